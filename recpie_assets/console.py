"""The run's console log: Dagster's own, less what a failed step adds to it.

A failed step makes Dagster log two tracebacks (the step's and the run's, ~100 lines) and a
line for every step downstream of it that is not run. `recpie run` prints one line for the
failed run instead; all of it stays in the run's event log (the UI shows it) and comes back on
the console with ``verbose: true`` (`recpie run --verbose`).
"""

import logging

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
