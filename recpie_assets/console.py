"""The run's console log: Dagster's own, less what a failed step adds to it.

A failed step makes Dagster log two tracebacks (the step's and the run's, ~100 lines) and a
line for every step downstream of it that is not run. `recpie run` prints one line for the
failed run instead; all of it stays in the run's event log (the UI shows it) and comes back on
the console with ``verbose: true`` (`recpie run --verbose`).

Libraries' own chatter (MLflow's INFO lines and artifact bars, Hugging Face's weight-loading
bars, sentence-transformers' INFO lines) is nothing a user can act on: ``quiet_libraries``
turns it off in every process that loads the code location, unless the user's environment
asks for it.
"""

import logging
import os

import dagster as dg


def _not_failure_detail(record: logging.LogRecord) -> bool:
    event = getattr(record, "dagster_event", None)  # set by Dagster on the records of its events
    if event is not None:
        return not (event.is_step_failure or event.is_run_failure)
    msg = record.getMessage()  # Dagster's plain line for each step skipped after a failure
    return not ("Dependencies for step " in msg and msg.endswith("Not executing."))


@dg.logger({
    "log_level": dg.Field(str, default_value="INFO"),
    "name": dg.Field(str, default_value="dagster"),
    "verbose": dg.Field(bool, default_value=False,
                        description="print failed steps' tracebacks and the steps skipped after them"),
}, description="Dagster's colored console logger; a failure's tracebacks only on request.")
def console(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = dg.colored_console_logger.logger_fn(init_context)
    if not init_context.logger_config["verbose"]:
        log.addFilter(_not_failure_detail)
    return log


# what each library reads at import or call time; a user's own setting wins
QUIET_ENV = {
    "MLFLOW_LOGGING_LEVEL": "WARNING",                 # "Validating input example ...", per logged model
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",   # "Downloading artifacts", per logged model
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",               # transformers' "Loading weights", per model load
}


def quiet_libraries() -> None:
    """Set ``QUIET_ENV`` where the environment does not, and lower MLflow's logger if MLflow is
    already imported (it reads its level once, at import)."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"].upper())
