"""What reaches the user's terminal: skinml's progress and Prefect's stage lines, one line per user error; not
TensorFlow's start-up lines, MLflow's notes or tracebacks of bad input (all of which `-v` shows)."""

from __future__ import annotations

import logging
import os

from skinml.core.errors import UserError


def user_errors() -> tuple[type[Exception], ...]:
    """The errors that mean bad input or options: skinml's UserError (bad data, options, a model that does not fit,
    a download or weights file that fails), an image the model refuses, and an MLflow error (a model or run that is
    not there, a server that refuses). Reported as one line, exit status 2; any other error is skinml's own."""
    from mlflow.exceptions import MlflowException  # lazy: `skinml --help` starts without MLflow

    return (UserError, MlflowException)


def name_the_run(record: logging.LogRecord) -> bool:
    """Put the Prefect flow or task run a log line comes from into it (`[train best seed=1]`), so that a line such
    as 'Finished in state Completed()' says which stage finished."""
    name = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
    record.run = f" [{name}]" if name else ""
    return True


def no_traceback_for_user_errors(record: logging.LogRecord) -> bool:
    """Prefect logs a failed task or flow with its traceback; for an error in the user's input (the same message
    ends the command as one line) the traceback is left out."""
    if record.exc_info and isinstance(record.exc_info[1], user_errors()):
        record.exc_info, record.exc_text = None, None
    return True


def no_exit_flush_notes(record: logging.LogRecord) -> bool:
    """Leaves out Prefect's 'Still processing items: N items remaining...': its event and log workers' note that they
    are sending a run's last events as the command exits (a failed flow ends before they caught up)."""
    return not record.getMessage().startswith("Still processing items")


class PrefectUserErrors(logging.Filter):
    """Leaves out Prefect's lines about a task or flow run that failed with a user error: its 'Task run failed with
    exception' / 'Encountered exception' line and its 'Finished in state Failed(...)' line, once per run of the
    failed chain, all repeat the message that ends the command as skinml's one line. Prefect's UI keeps them (its API
    handler is not the terminal's); `-v` shows them here too.

    Prefect logs the exception line (with the exception) before the state line of the same run, so the runs seen
    failing with a user error are remembered by id."""

    RUN_ID_FIELD = {"prefect.task_runs": "task_run_id", "prefect.flow_runs": "flow_run_id"}

    def __init__(self) -> None:
        super().__init__()
        self.failed_runs: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        field = self.RUN_ID_FIELD.get(record.name)
        if field is None:
            return True
        run_id = str(getattr(record, field, ""))
        if record.exc_info and isinstance(record.exc_info[1], user_errors()):
            self.failed_runs.add(run_id)
            return False
        return not (run_id in self.failed_runs and record.getMessage().startswith("Finished in state Failed"))


def set_up_console(verbose: bool) -> None:
    """Logging and environment for one skinml command."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s%(run)s: %(message)s",
    )
    prefect_user_errors = PrefectUserErrors()  # one for all handlers: it remembers the failed runs
    for handler in logging.getLogger().handlers:
        handler.addFilter(name_the_run)
        if not verbose:
            handler.addFilter(prefect_user_errors)  # before the next one, which clears exc_info
            handler.addFilter(no_traceback_for_user_errors)
            handler.addFilter(no_exit_flush_notes)
    logging.getLogger("skinml").setLevel(logging.INFO)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not verbose:  # MLflow's notes (creating tables, experiments); its warnings always show
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is first imported
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # in case it already was
