"""How long each skinml command takes to end once sent SIGTERM in the middle of training, with both cores busy (two
spinning processes beside it), and what it leaves behind: MLflow runs and Prefect flow runs still RUNNING.

    python benchmarks/bench_stop.py [--data-dir D --weights W] [--repeats 5]

Runs `skinml train`, `skinml pipeline` and `skinml sweep` `--repeats` times each in one isolated store (MLflow
SQLite file, Prefect home), sends SIGTERM to the process once it has printed its first epoch, and times its exit.
Without --data-dir it uses a small synthetic folder, 32-px images and random weights: stopping does not depend on data.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from arguments import data_folder, isolated_store, synthetic_parser

BIN = Path(sys.executable).parent
EPOCH_LINE = "epoch 1:"


def stop_time(command: list[str], env: dict, cwd: Path, timeout: float = 600) -> tuple[float, int | None]:
    """Start `command`, send it SIGTERM once it prints its first epoch; the seconds until it exits, and its exit
    status (128 + 15 when it stopped as asked)."""
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    training = threading.Event()

    def read() -> None:
        for line in process.stdout:
            if EPOCH_LINE in line:
                training.set()

    threading.Thread(target=read, daemon=True).start()
    if not training.wait(timeout):
        os.killpg(process.pid, signal.SIGKILL)
        sys.exit(f"{command[1]} printed no '{EPOCH_LINE}' within {timeout} s")
    asked = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return float("inf"), None
    return time.monotonic() - asked, code


def left_running(tracking_uri: str) -> tuple[list[str], list[str]]:
    """The MLflow runs and the Prefect flow runs of this store (the environment's PREFECT_HOME) still RUNNING."""
    import mlflow
    from prefect.client.orchestration import get_client

    client = mlflow.MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = [
        f"{r.info.run_name} ({r.info.run_id})"
        for r in client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=1000)
    ]
    with get_client(sync_client=True) as prefect:
        flow_runs = [
            f"{r.name} ({r.state_type.value})"
            for r in prefect.read_flow_runs(limit=200)
            if r.state_type is not None and r.state_type.value in ("RUNNING", "PENDING")
        ]
    return runs, flow_runs


def main() -> None:
    parser = synthetic_parser(__doc__)
    args = parser.parse_args()
    data_dir = data_folder(args.data_dir, "skinml-stop-data-")
    folder, env = isolated_store(None, "skinml-stop-")
    env["PREFECT_HOME"] = os.environ["PREFECT_HOME"] = str(folder / "prefect")
    recipe = [
        "--data-dir",
        str(data_dir),
        "--weights",
        args.weights,
        "--image-size",
        str(args.image_size),
        "--epochs",
        "100000",
        "--cached-views",
        "1",
    ]
    skinml = str(BIN / "skinml")
    commands = {
        "skinml train": [skinml, "train", *recipe],
        "skinml pipeline": [skinml, "pipeline", *recipe],
        "skinml sweep": [skinml, "sweep", *recipe, "--n-trials", "3", "--no-retrain"],
    }
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        times: dict[str, list[float]] = {}
        codes: dict[str, list[int | None]] = {}
        for _ in range(args.repeats):
            for name, command in commands.items():
                seconds, code = stop_time(command, env, folder)
                times.setdefault(name, []).append(seconds)
                codes.setdefault(name, []).append(code)
                print(f"{name}: ended {seconds:.2f} s after SIGTERM, exit status {code}", flush=True)
    finally:
        for spinner in spinners:
            spinner.kill()
    runs, flow_runs = left_running(env["MLFLOW_TRACKING_URI"])
    print(f"seconds from SIGTERM to exit, {len(spinners)} cores busy beside it")
    for name, values in times.items():
        print(
            f"{name:16s} n={len(values)}  median {statistics.median(values):5.2f} s  max {max(values):5.2f} s  "
            f"exit statuses {sorted(set(codes[name]), key=str)}"
        )
    print(f"left RUNNING: {len(runs)} MLflow runs {runs}, {len(flow_runs)} Prefect flow runs {flow_runs}")


if __name__ == "__main__":
    main()
