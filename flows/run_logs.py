"""skinml's progress in the Prefect UI: the lines skinml logs while a flow or task runs (features computed, each
epoch's figures, the evaluation, the promotion's reason) go to Prefect's API too, as logs of the run that does the
work, beside the terminal. It is what PREFECT_LOGGING_EXTRA_LOGGERS=skinml does when set before Prefect loads, made
independent of import order and quiet outside a run (a `skinml train` is no flow)."""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler


class SkinmlRunLogs(APILogHandler):
    """Prefect's API log handler for the `skinml` logger, passing only the lines logged inside a flow or task run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return bool(TaskRunContext.get() or FlowRunContext.get()) and super().filter(record)


def send_skinml_logs_to_prefect() -> None:
    """Attach the handler once to the `skinml` logger (its lines still reach the terminal), which logs its progress
    (INFO) also where no skinml command set it up: a deployment's flow run that a Prefect worker or `serve` starts."""
    logger = logging.getLogger("skinml")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not any(isinstance(handler, SkinmlRunLogs) for handler in logger.handlers):
        logger.addHandler(SkinmlRunLogs())
