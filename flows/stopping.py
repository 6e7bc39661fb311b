"""Stopping a flow run on SIGTERM or SIGINT the way skinml's commands stop: at a safe point, its MLflow runs ended
KILLED, then Prefect's own TerminationSignal, so that Prefect ends the flow run too (Crashed, or Cancelled when its
runner asked). Prefect's engine installs a SIGTERM handler of its own for the flow run's life, which raises wherever
the signal lands: inside an MLflow call, whose open database transaction then blocks closing the runs (seen: a
pipeline that never ended after SIGTERM, its MLflow and Prefect runs left RUNNING)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from prefect.exceptions import TerminationSignal

from skinml.tracking.runs import Terminated, end_runs_on_signals


class FlowTerminated(Terminated, TerminationSignal):
    """skinml's Terminated as Prefect's TerminationSignal: skinml's commands and Prefect's engine both know it."""

    def __init__(self, signum: int):
        Terminated.__init__(self, signum)
        self.signal = signum


@contextlib.contextmanager
def stops_like_skinml() -> Iterator[None]:
    """Inside a flow's body: skinml's signal handlers instead of Prefect's, Prefect's back afterwards."""
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's only
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    end_runs_on_signals()
    try:
        yield
    except FlowTerminated:
        raise
    except Terminated as stop:
        raise FlowTerminated(stop.signum) from stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
