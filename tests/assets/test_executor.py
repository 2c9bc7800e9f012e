"""Where a run's steps execute (executor.py): in the run's own process unless the run asks for
a process per step (a UI Materialize click gets the default, with no run config), and a
deployment's RECPIE_EXECUTOR named or refused in one line. Real runs on a real instance."""

import importlib.util
import os

import dagster as dg
import pytest

from recpie_assets.definitions import build_definitions, reconstructable_full_job
from recpie_assets.executor import ExecutorChoiceError, local_executor, step_executor
from recpie_assets.ingest import TABLES


def step_pids(tmp_path, run_config: dict) -> set[int]:
    """The pids that executed the steps of a run of the ingestion (smoke profile, synthetic data)."""
    home = tmp_path / "home"
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.execute_job(reconstructable_full_job("smoke", str(home), ""), instance, run_config=run_config,
                                asset_selection=[dg.AssetKey(k) for k in TABLES])
        assert result.success
        return {e.pid for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START}


def test_a_run_without_execution_config_runs_its_steps_in_its_own_process(tmp_path):
    assert step_pids(tmp_path, {}) == {os.getpid()}


def test_a_run_can_still_ask_for_a_process_per_step(tmp_path):
    pids = step_pids(tmp_path, {"execution": {"config": {"multiprocess": {"max_concurrent": 1}}}})
    assert pids and os.getpid() not in pids  # each step (the ingestion, its checks) a process of its own


def test_every_job_of_the_code_location_uses_it(tmp_path):
    defs = build_definitions("smoke", str(tmp_path))
    assert defs.resolve_job_def("recpie_full").executor_def is local_executor
    assert defs.resolve_implicit_global_asset_job_def().executor_def is local_executor  # the Materialize button


def test_the_deployment_names_its_executor_or_is_told_in_one_line(monkeypatch):
    monkeypatch.delenv("RECPIE_EXECUTOR", raising=False)
    assert step_executor() is local_executor
    with pytest.raises(ExecutorChoiceError, match=r"^RECPIE_EXECUTOR='pods': expected 'local' or 'k8s'$"):
        step_executor("pods")
    if importlib.util.find_spec("dagster_k8s") is None:
        with pytest.raises(ExecutorChoiceError, match=r"needs dagster-k8s in the image \(pip install dagster-k8s\)"):
            step_executor("k8s")
    else:
        assert step_executor("k8s").name == "k8s"
