"""How long each command takes to exit once it has printed its last line (a server: once it is sent SIGTERM).
A process that forked while threads held a lock, or that waits on a telemetry upload without a network, shows here
as seconds or minutes. Runs `skinml train`, `evaluate`, `predict`, `sweep`, `mlflow run .` and `mlflow models serve`
`--repeats` times each on one machine, then, with `--team-sweeps N`, N rounds of two `skinml sweep` workers sharing
a study on a `deploy/stack` started for the purpose (needs PostgreSQL's server binaries).

    python benchmarks/bench_exit.py [--data-dir D --weights W] [--repeats 5] [--team-sweeps 10]

Without --data-dir it uses a small synthetic folder, 32-px images and random weights: exits do not depend on data.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from arguments import data_folder, isolated_store, synthetic_parser
from bench_serving import free_port, post

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def started(command: list[str], env: dict, cwd: Path) -> tuple[subprocess.Popen, dict[str, float]]:
    """The command started, and the times of its last output line so far and of its exit, kept by two threads (so
    that one process's exit is timed while another is waited for)."""
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    times = {"last line": time.monotonic()}

    def read() -> None:
        for _ in process.stdout:
            times["last line"] = time.monotonic()

    def wait() -> None:
        process.wait()
        times["exit"] = time.monotonic()

    for target in (read, wait):
        threading.Thread(target=target, daemon=True).start()
    return process, times


def exit_delay(process: subprocess.Popen, times: dict[str, float], what: str, timeout: float = 1800) -> float:
    """Seconds between the process's last output line and its exit; stops the benchmark if it failed."""
    code = process.wait(timeout=timeout)
    while "exit" not in times:
        time.sleep(0.01)
    if code != 0:
        sys.exit(f"{what} exited with status {code}")
    return max(0.0, times["exit"] - times["last line"])


def run(command: list[str], env: dict, cwd: Path, what: str) -> float:
    process, last = started(command, env, cwd)
    return exit_delay(process, last, what)


def serve(env: dict, cwd: Path, image: Path) -> float:
    """`mlflow models serve` of the champion answers one image, then gets SIGTERM: seconds from SIGTERM to exit."""
    port = free_port()
    process, _ = started(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/skinml@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env,
        cwd,
    )
    deadline, probe = time.time() + 300, base64.b64encode(image.read_bytes()).decode()
    while True:
        try:
            post(f"http://127.0.0.1:{port}/invocations", [probe])
            break
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                os.killpg(process.pid, signal.SIGKILL)
                sys.exit("mlflow models serve did not answer")
            time.sleep(0.5)
    asked = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=600)
    return time.monotonic() - asked


def local_commands(data_dir: Path, weights: str, size: int, repeats: int) -> dict[str, list[float]]:
    folder, env = isolated_store(None, "skinml-exit-")
    recipe = [
        "--data-dir",
        str(data_dir),
        "--weights",
        weights,
        "--image-size",
        str(size),
        "--epochs",
        "2",
        "--cached-views",
        "1",
    ]
    image = next((data_dir / "images").glob("*.jpg"))
    skinml = str(BIN / "skinml")
    delays: dict[str, list[float]] = {}

    def timed(name: str, command: list[str]) -> None:
        delays.setdefault(name, []).append(run(command, env, folder, name))
        print(f"{name}: {delays[name][-1]:.2f} s", flush=True)

    for _ in range(repeats):
        timed("skinml train", [skinml, "train", *recipe, "--output", "train.json"])
        model = json.loads((folder / "train.json").read_text())["model_uri"]
        timed("skinml evaluate", [skinml, "evaluate", "--model-uri", model])
        timed(
            "mlflow run .",
            [
                str(BIN / "mlflow"),
                "run",
                str(REPO),
                "--env-manager",
                "local",
                "--experiment-name",
                "skinml",
                "-P",
                f"data_dir={data_dir}",
                "-P",
                f"weights={weights}",
                "-P",
                "epochs=2",
                "-P",
                f"image_size={size}",
                "-P",
                "cached_views=1",
            ],
        )
        timed("skinml predict", [skinml, "predict", str(image)])
        timed("skinml sweep", [skinml, "sweep", *recipe, "--n-trials", "2", "--no-retrain"])
        delays.setdefault("mlflow models serve (SIGTERM)", []).append(serve(env, folder, image))
    return delays


def team_sweeps(data_dir: Path, weights: str, size: int, rounds: int) -> list[float]:
    """`rounds` times two `skinml sweep` workers on one study of a deploy/stack started here; their exit delays."""
    stack_dir = Path(tempfile.mkdtemp(prefix="skinml-exit-stack-", dir="/tmp"))
    stack = [sys.executable, str(REPO / "deploy" / "stack")]
    up = subprocess.run(
        [
            *stack,
            "up",
            str(stack_dir),
            "--pg-port",
            str(free_port()),
            "--mlflow-port",
            str(free_port()),
            "--prefect-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
    )
    if up.returncode != 0:
        sys.exit(up.stderr)
    try:
        exports = dict(re.findall(r"^export (\w+)='(.*)'$", up.stdout, re.MULTILINE))
        delays = []
        for i in range(rounds):
            folders = [stack_dir / f"worker{i}{w}" for w in "ab"]
            for folder in folders:
                folder.mkdir()
            env = {**os.environ, **exports, "SKINML_CACHE_DIR": str(stack_dir / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
            sweep = [
                str(BIN / "skinml"),
                "sweep",
                "--data-dir",
                str(data_dir),
                "--weights",
                weights,
                "--image-size",
                str(size),
                "--epochs",
                "2",
                "--cached-views",
                "1",
                "--n-trials",
                "4",
                "--study-name",
                f"exit-{i}",
            ]
            first = started(sweep, env, folders[0])
            wait_for_parent_run(exports["SKINML_SWEEP_STORAGE"], f"exit-{i}", first[0])
            second = started([*sweep, "--no-retrain"], env, folders[1])
            round_delays = [exit_delay(*worker, f"sweep worker, round {i + 1}") for worker in (first, second)]
            print(f"round {i + 1}: exit delays {round_delays[0]:.2f} s, {round_delays[1]:.2f} s", flush=True)
            delays += round_delays
        return delays
    finally:
        subprocess.run([*stack, "down", str(stack_dir)], capture_output=True)


def wait_for_parent_run(storage: str, study_name: str, first: subprocess.Popen) -> None:
    """A joining worker needs the study's parent run, which the first worker creates."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        try:
            if optuna.load_study(study_name=study_name, storage=storage).user_attrs.get("mlflow_parent_run_id"):
                return
        except KeyError:
            pass
        time.sleep(1)
    sys.exit(f"the first worker of {study_name} made no parent run")


def report(name: str, delays: list[float]) -> None:
    print(f"{name:32s} n={len(delays):2d}  median {statistics.median(delays):5.2f} s  max {max(delays):5.2f} s")


def main() -> None:
    parser = synthetic_parser(__doc__)
    parser.add_argument("--team-sweeps", type=int, default=0, help="rounds of two sweep workers on deploy/stack")
    args = parser.parse_args()
    data_dir = data_folder(args.data_dir, "skinml-exit-data-")
    delays = local_commands(data_dir, args.weights, args.image_size, args.repeats) if args.repeats else {}
    if args.team_sweeps:
        delays["skinml sweep, 2 workers, team"] = team_sweeps(data_dir, args.weights, args.image_size, args.team_sweeps)
    print("seconds from the last output line to exit")
    for name, values in delays.items():
        report(name, values)


if __name__ == "__main__":
    main()
