"""Commands run under `strace -f`, and what their trace says: connections that leave the machine, and processes
forked (not spawned) after their parent had started threads, which can deadlock on a lock a thread held."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from pathlib import Path

import pytest

STRACE = [
    "strace",
    "-f",
    "--seccomp-bpf",
    "-e",
    "signal=none",
    "-e",
    "trace=connect,sendto,sendmsg,clone,clone3,fork,vfork,execve",
]

needs_strace = pytest.mark.skipif(
    shutil.which("strace") is None, reason="strace is not installed (apt-get install strace; .ci/run installs it)"
)

# Variables under which MLflow, Prefect or OpenVINO turn their telemetry off by themselves (CI detection, pytest):
# a traced command runs without them, as on a user's machine.
TELLTALES = (
    "CI",
    "PYTEST_CURRENT_TEST",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "JENKINS_URL",
    "TF_BUILD",
    "BUILDKITE",
    "TRAVIS",
    "CIRCLECI",
    "TEAMCITY_VERSION",
    "BITBUCKET_BUILD_NUMBER",
    "BITBUCKET_COMMIT",
    "CODEBUILD_BUILD_ARN",
    "CODEBUILD_BUILD_ID",
    "CLOUD_RUN_EXECUTION",
    "DRONE",
    "SEMAPHORE",
    "APPVEYOR",
    "BUDDY",
    "CI_NAME",
    "RUNBOT_HOST_URL",
    "RUNBOT_BUILD_NAME",
    "RUNBOT_WORKER_ID",
    "SKINML_TELEMETRY",
    "DO_NOT_TRACK",
    "MLFLOW_DISABLE_TELEMETRY",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
    # set in this process by mlflow.set_experiment/start_run of an earlier test; a shell has neither
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
)

IPV4 = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
IPV6 = re.compile(r'sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"')
LINE = re.compile(r"^(\d+)\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")


def traced(command: list[str], log: Path) -> list[str]:
    """`command` run under strace, the trace of it and every process it starts written to `log`."""
    return [*STRACE, "-o", str(log), *command]


def user_environment(home: Path) -> dict[str, str]:
    """This process's environment as a user's shell would have it: none of the variables that make a dependency
    believe it runs in CI or under pytest, none of the telemetry switches, and a HOME of its own (OpenVINO keeps its
    consent file there)."""
    home.mkdir(parents=True, exist_ok=True)
    return {**{k: v for k, v in os.environ.items() if k not in TELLTALES}, "HOME": str(home)}


def system_calls(log: Path) -> list[tuple[int, str, str, str]]:
    """(pid, name, arguments, result) of each traced call, the halves of calls that strace split joined."""
    pending: dict[int, str] = {}
    calls = []
    for raw in log.read_text(errors="replace").splitlines():
        match = LINE.match(raw)
        if not match:
            continue
        pid, text = int(match.group(1)), match.group(2)
        if text.endswith("<unfinished ...>"):
            pending[pid] = text[: -len("<unfinished ...>")].rstrip()
            continue
        resumed = re.match(r"^<\.\.\. \w+ resumed>(.*)$", text)
        if resumed:
            text = pending.pop(pid, "") + resumed.group(1)
        call = CALL.match(text)
        if call:
            calls.append((pid, call.group(1), call.group(2), call.group(3)))
    return calls


def commands(calls: list[tuple[int, str, str, str]]) -> dict[int, str]:
    """What each traced process runs: the argv of its last execve, or its parent's (for messages)."""
    running: dict[int, str] = {}
    for pid, name, arguments, result in calls:
        if name == "execve" and result == "0":
            argv = re.search(r"\[(.*?)\]", arguments)
            running[pid] = " ".join(re.findall(r'"([^"]*)"', argv.group(1))[:4]) if argv else "?"
        elif name in ("clone", "clone3", "fork", "vfork") and result.isdigit() and result != "0":
            running[int(result)] = running.get(pid, "?")
    return running


def outside_connections(log: Path, allowed: set[str] = frozenset()) -> list[str]:
    """Each connection attempt to an address outside loopback and `allowed`, and each name lookup (DNS, port 53,
    even on loopback: the user configured addresses, so a lookup is someone else's)."""
    calls = system_calls(log)
    running = commands(calls)
    found = []
    for pid, name, arguments, _ in calls:
        if name not in ("connect", "sendto", "sendmsg"):
            continue
        for pattern in (IPV4, IPV6):
            for port, address in pattern.findall(arguments):
                ip = ipaddress.ip_address(address)
                ip = ip.ipv4_mapped or ip if ip.version == 6 else ip
                if int(port) == 53 or not (ip.is_loopback or address in allowed):
                    found.append(f"pid {pid} ({running.get(pid, '?')}) {name} to {address} port {port}")
    return sorted(set(found))


def forks_after_threads(log: Path) -> list[str]:
    """Each child forked (not vfork/posix_spawn) by a process that had started threads, and that never ran execve."""
    group: dict[int, int] = {}  # thread id -> its process (thread group) id
    threaded: set[int] = set()
    forked: dict[int, int] = {}  # child pid -> parent process id
    executed: set[int] = set()
    for pid, name, arguments, result in system_calls(log):
        process = group.setdefault(pid, pid)
        if name == "execve" and result == "0":
            executed.add(pid)
        if name not in ("clone", "clone3", "fork", "vfork") or not result.isdigit() or result == "0":
            continue
        child = int(result)
        if "CLONE_THREAD" in arguments:
            group[child] = process
            threaded.add(process)
        elif name != "vfork" and "CLONE_VFORK" not in arguments and process in threaded:
            forked[child] = process
    return [
        f"process {parent} forked {child} after starting threads, and {child} did not exec"
        for child, parent in sorted(forked.items())
        if child not in executed
    ]
