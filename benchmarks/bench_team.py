"""The team stack under load: starts `deploy/stack up` in a new folder on 127.0.0.1 (the options after `--` go to
it), then prints the latency of authenticated and unauthenticated calls to the MLflow tracking server and the Prefect
server, and runs per second for 1, 8 and 32 client threads, each creating a run, logging 20 parameters and 50
metric steps in one batch and a small text artifact, and ending it; PostgreSQL's connections at the end of each
step. Stops the stack and removes its folder.

    python benchmarks/bench_team.py [--calls 100] [--seconds 20] [--clients 1 8 32] \
        [-- --auth-cache-ttl 0 --mlflow-workers 4]
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from bench_serving import free_port
from soak_serving import group_rss_mb

STACK = [sys.executable, str(Path(__file__).resolve().parents[1] / "deploy" / "stack")]


def call_ms(url: str, auth: str | None, calls: int, body: bytes | None = None) -> tuple[float, float]:
    """p50 and p99, in ms, of `calls` requests (Basic auth with `auth`, user:password; a JSON POST with `body`)."""
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=60) as answer:
            answer.read()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def one_run(client, experiment_id: str) -> None:
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id)
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        params=[Param(f"p{i}", str(i)) for i in range(20)],
        metrics=[Metric("loss", 1.0 / (step + 1), now, step) for step in range(50)],
    )
    client.log_text(run.info.run_id, "a small note\n", "note.txt")
    client.set_terminated(run.info.run_id)


def runs_step(experiment_id: str, clients: int, seconds: float, max_runs: int) -> dict:
    """`clients` threads making runs until `seconds` have passed or `max_runs` were started in all."""
    import mlflow

    outcomes: collections.Counter = collections.Counter()
    durations: list[float] = []
    lock, started_runs = threading.Lock(), [0]
    deadline = time.perf_counter() + seconds

    def client() -> None:
        tracking = mlflow.MlflowClient()
        while time.perf_counter() < deadline:
            with lock:
                if started_runs[0] >= max_runs:
                    return
                started_runs[0] += 1
            began = time.perf_counter()
            try:
                one_run(tracking, experiment_id)
                outcome = "ok"
            except Exception as exc:  # counted, not raised: the figure is how many fail
                outcome = type(exc).__name__
            with lock:
                outcomes[outcome] += 1
                if outcome == "ok":
                    durations.append(time.perf_counter() - began)

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return {
        "clients": clients,
        "runs": outcomes["ok"],
        "per_s": outcomes["ok"] / wall,
        "errors": {k: v for k, v in outcomes.items() if k != "ok"},
        "p50_s": float(np.percentile(durations, 50)) if durations else float("nan"),
        "p99_s": float(np.percentile(durations, 99)) if durations else float("nan"),
    }


def pg_connections(pg_url: str) -> dict[str, int]:
    """Open connections per database."""
    import psycopg

    with psycopg.connect(pg_url) as connection:
        rows = connection.execute(
            "SELECT datname, count(*) FROM pg_stat_activity WHERE datname IS NOT NULL GROUP BY datname ORDER BY datname"
        ).fetchall()
    return {name: count for name, count in rows}


plain_process: list[subprocess.Popen] = []


def plain_server(backend_uri: str) -> str:
    """An MLflow tracking server without authentication on `backend_uri`, one worker, answering; its URL."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    plain_process.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                backend_uri,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            call_ms(f"{url}/api/2.0/mlflow/experiments/search?max_results=5", None, 10)  # up, and warm
            return url
        except OSError:
            time.sleep(1)
    sys.exit("the plain tracking server did not come up")


def tracking_pid(folder: Path) -> int:
    return json.loads((folder / "stack.json").read_text())["pids"]["mlflow"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100, help="sequential calls per latency figure")
    parser.add_argument("--seconds", type=float, default=20, help="length of each load step")
    parser.add_argument("--max-runs", type=int, default=2000, help="runs per load step at most")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("stack_options", nargs="*", help="after --: options of `deploy/stack up`")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="skinml-bench-stack-", dir="/tmp"))
    folder.chmod(0o755)
    ports = ["--pg-port", str(free_port()), "--mlflow-port", str(free_port()), "--prefect-port", str(free_port())]
    try:
        up = subprocess.run(
            [*STACK, "up", str(folder), *ports, *args.stack_options], capture_output=True, text=True, timeout=600
        )
        if up.returncode != 0:
            sys.exit(f"deploy/stack up failed: {up.stderr.strip()}")
        exports = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines())
        os.environ.update({name: value.strip("'") for name, value in exports.items()})
        tracking, prefect = os.environ["MLFLOW_TRACKING_URI"], os.environ["PREFECT_API_URL"]
        mlflow_auth = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}"
        pg_url = os.environ["SKINML_SWEEP_STORAGE"]
        search = f"{tracking}/api/2.0/mlflow/experiments/search?max_results=5"
        call_ms(search, mlflow_auth, 10)  # warm-up: every worker imports its handlers on first use
        plain = plain_server(pg_url.rsplit("/", 1)[0] + "/mlflow")  # the same database, no authentication
        try:
            unauthenticated = call_ms(f"{plain}/api/2.0/mlflow/experiments/search?max_results=5", None, args.calls)
        finally:
            os.killpg(plain_process[0].pid, signal.SIGTERM)
        latency = {
            "MLflow /health, no password": call_ms(f"{tracking}/health", None, args.calls),
            "MLflow experiments/search, basic auth": call_ms(search, mlflow_auth, args.calls),
            "the same on a server without authentication, same database": unauthenticated,
            "Prefect /api/health, auth string": call_ms(
                f"{prefect}/health", os.environ["PREFECT_API_AUTH_STRING"], args.calls
            ),
            "Prefect /api/flows/filter (POST), auth string": call_ms(
                f"{prefect}/flows/filter", os.environ["PREFECT_API_AUTH_STRING"], args.calls, b'{"limit": 5}'
            ),
        }
        import mlflow

        experiment_id = mlflow.MlflowClient().create_experiment(f"bench-{time.time_ns()}")
        steps = []
        for clients in args.clients:
            step = runs_step(experiment_id, clients, args.seconds, args.max_runs)
            steps.append({**step, "pg": pg_connections(pg_url), "rss": group_rss_mb(tracking_pid(folder))})
    finally:
        subprocess.run([*STACK, "down", str(folder)], capture_output=True, timeout=300)
        shutil.rmtree(folder, ignore_errors=True)

    print(f"deploy/stack up {' '.join(args.stack_options) or '(defaults)'}; {args.calls} calls per latency row")
    print("| call | p50 | p99 |\n|---|---|---|")
    for name, (p50, p99) in latency.items():
        print(f"| {name} | {p50:.1f} ms | {p99:.1f} ms |")
    print(
        f"\n| clients | runs in {args.seconds:g} s | runs/s | p50 | p99 | errors | PostgreSQL connections "
        "| tracking server memory |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in steps:
        print(
            f"| {s['clients']} | {s['runs']} | {s['per_s']:.2f} | {s['p50_s']:.2f} s | {s['p99_s']:.2f} s | "
            f"{s['errors'] or 'none'} | {s['pg']} | {s['rss']:.0f} MB |"
        )


if __name__ == "__main__":
    main()
