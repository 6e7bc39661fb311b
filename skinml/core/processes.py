"""What a skinml process killed with SIGKILL leaves behind besides its runs: Prefect's temporary API server (a child
process that outlives it). Each skinml command marks its environment with its PID, which the server inherits; the next
command stops servers whose marking process is gone."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from skinml.core.settings import OWNER_PID

OWNER_VARIABLE = OWNER_PID
EPHEMERAL_MARK = "PREFECT__SERVER_EPHEMERAL=1"  # set by Prefect on the temporary server it starts


def process_exists(pid: int) -> bool:
    """Whether a process with this PID exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def mark_owner() -> None:
    """Record this process as the owner of the processes it starts from now on (they inherit the environment)."""
    os.environ[OWNER_VARIABLE] = str(os.getpid())


def orphaned_servers() -> dict[int, int]:
    """PIDs of Prefect temporary servers started by a skinml process that no longer exists, with that owner's PID.
    Linux only (read from /proc); elsewhere none are found."""
    found = {}
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
        except OSError:  # another user's process, or one that just ended
            continue
        if EPHEMERAL_MARK.encode() not in variables:
            continue
        owner = next((v.split(b"=", 1)[1] for v in variables if v.startswith(f"{OWNER_VARIABLE}=".encode())), b"")
        if owner.isdigit() and not process_exists(int(owner)):
            found[int(environ.parent.name)] = int(owner)
    return found


def stop_orphaned_servers(timeout: float = 10.0) -> dict[int, int]:
    """Stop (SIGTERM, then SIGKILL) the orphaned Prefect temporary servers; returns {server PID: dead owner's PID}."""
    servers = orphaned_servers()
    for pid in servers:
        os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline and any(process_exists(pid) for pid in servers):
        time.sleep(0.2)
    for pid in servers:
        if process_exists(pid):
            os.kill(pid, signal.SIGKILL)
    return servers
