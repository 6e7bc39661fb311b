"""The processes and files under deploy/stack: PostgreSQL's binaries, secrets, PIDs, ports, health checks, the
servers' outbound HTTP and stopping a process group. deploy/stack imports it (the script's folder is on its path)."""

from __future__ import annotations

import base64
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


class StackError(Exception):
    """A problem the user can fix: printed as one line, exit status 1."""


def pg_binary(name: str) -> str:
    """A PostgreSQL server binary: on PATH, or where Debian's `postgresql` package puts it."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise StackError(f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)")
    return found


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user Debian's package creates."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def secret(folder: Path, name: str) -> str:
    """The secret `name`, generated on first use and kept readable by the owner only."""
    path = folder / "secrets" / name
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this very process is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def answers(url: str, auth: str | None = None) -> bool:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def wait_until(check, what: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        if process.poll() is not None:
            raise StackError(f"{what} exited with status {process.returncode}; see {log}")
        time.sleep(1)
    raise StackError(f"{what} did not come up within {timeout:.0f} s; see {log}")


def advertised_host(host: str) -> str:
    """The name a teammate's browser reaches a server by: the host it listens on, or this machine's name when it
    listens on every address."""
    return socket.getfqdn() if host in ("0.0.0.0", "::", "") else host


def no_outbound_http() -> dict[str, str]:
    """Proxy settings that keep the Prefect server's own HTTP requests on this machine. When a client asks it for
    the worker or block catalogue (`prefect work-pool create` does), it fetches the catalogue from GitHub, with no
    setting to stop it, and falls back to the copy it ships: through a proxy on a closed loopback port it falls back
    at once, without a DNS lookup. A proxy the user's environment sets is kept (its own route to the outside)."""
    if any(
        os.environ.get(name)
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
    ):
        return {}
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    local = ",".join(filter(None, (os.environ.get("NO_PROXY"), "127.0.0.1,localhost,::1")))
    return {"HTTPS_PROXY": closed, "HTTP_PROXY": closed, "NO_PROXY": local}


def stop_group(pid: int, timeout: float = 30) -> None:
    """SIGTERM to the process group `up` started (the server and its workers), SIGKILL after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)
