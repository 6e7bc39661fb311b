"""Prefect's temporary API server, started early. A flow run without PREFECT_API_URL needs one, and Prefect starts it
at the flow's first call: 2-3 s of a subprocess loading Prefect's server. Started before the command imports
TensorFlow, that subprocess loads on the other core while this process imports."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


def start_temporary_server() -> Callable[[], None]:
    """Start Prefect's temporary server when no PREFECT_API_URL is set, waiting for it in a thread; returns the
    function that joins that thread, to call before the first flow (Prefect's client would otherwise take a server
    that is not answering yet for started). A failed start is left to Prefect's own at the flow's first call, which
    reports it."""
    # lazy: Prefect loads only for the commands that run a flow
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return lambda: None
    # Imported here, not in the thread: imports hold the interpreter lock and would only slow TensorFlow's down
    from prefect.server.api.server import SubprocessASGIServer

    def start() -> None:
        try:
            SubprocessASGIServer().start()  # the instance Prefect's client takes (one per port; Prefect picks it)
        except Exception as exc:
            log.debug("early start of Prefect's temporary server failed: %s", exc)

    thread = threading.Thread(target=start, name="prefect-temporary-server", daemon=True)
    thread.start()
    return thread.join


@contextmanager
def temporary_server_settings() -> Iterator[None]:
    """Prefect's settings for the flows of one command: on the temporary server (no PREFECT_API_URL), no flow-run
    heartbeats. They let a server mark a crashed flow run, but this server lives and dies with the command, and each
    flow's end waited up to a second for the heartbeat thread. Against a real server, Prefect's own settings hold."""
    # lazy: Prefect loads only for the commands that run a flow
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
