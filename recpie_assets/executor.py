"""Where a run's steps execute.

On one machine (the default, ``RECPIE_EXECUTOR`` unset or ``local``) every run, from the CLI
or from the UI's Materialize button, executes its steps in the run worker's own process: a
step process costs 5-7 s of start-up (dagster, polars and the code location imported again),
more than most data steps take, and the heavy steps are pooled to one at a time anyway
(``dagster.yaml``). The Launchpad still offers ``multiprocess`` for a run that wants it.
bench/reports/step_overhead.md has the measurements.

A cluster deployment sets ``RECPIE_EXECUTOR=k8s``: ``dagster_k8s.k8s_job_executor`` gives each
step its own pod, and the steps tagged ``recpie/gpu`` ask for a GPU (``constants.py``).
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_ENV = "RECPIE_EXECUTOR"
_LOCAL_CHOICES = dg.multi_or_in_process_executor.config_schema.config_type  # in_process | multiprocess


@dg.executor(
    name="recpie_local",
    config_schema=dg.Field(_LOCAL_CHOICES, default_value={"in_process": {}},
                           description="in_process (the default: one process, no start-up per step) "
                                       "or multiprocess (a process per step)"),
    requirements=dg.multi_or_in_process_executor.get_requirements,
)
def local_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's default executor with ``in_process`` as its default instead of ``multiprocess``."""
    return dg.multi_or_in_process_executor.executor_creation_fn(init_context)


class ExecutorChoiceError(ValueError):
    """``RECPIE_EXECUTOR`` names no executor this code location can use; one line for the user."""


def step_executor(choice: str | None = None) -> dg.ExecutorDefinition:
    """The executor named by ``RECPIE_EXECUTOR`` (``local`` or ``k8s``)."""
    choice = (choice if choice is not None else os.environ.get(EXECUTOR_ENV, "")).strip() or "local"
    if choice == "local":
        return local_executor
    if choice == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise ExecutorChoiceError(f"{EXECUTOR_ENV}=k8s needs dagster-k8s in the image "
                                      "(pip install dagster-k8s)") from None
        return k8s_job_executor
    raise ExecutorChoiceError(f"{EXECUTOR_ENV}={choice!r}: expected 'local' or 'k8s'")
