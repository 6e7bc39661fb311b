"""Screenshots of the Prefect UI as a user sees skinml in it: a pipeline's flow-run page with its stages, its result
artifact, and the retrain deployment's page, taken with headless Chromium (Debian's `chromium` package) from a
Prefect server started here on 127.0.0.1 with a home of its own, saved as PNGs. See docs/operations.md.

    python benchmarks/prefect_screenshots.py --data-dir D --weights W [--epochs 8] --output docs/images

The pipeline runs in a temporary folder (its own MLflow store and feature cache) through that server; `skinml
schedule` then serves the deployment for as long as its page takes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from arguments import benchmark_parser, isolated_store, weights_argument
from bench_serving import free_port
from ui_screenshots import CHROMIUM_FLAGS, wait_until_up

BIN = Path(sys.executable).parent


def shoot(chromium: str, url: str, target: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={target.resolve()}", url],
            check=True,
            capture_output=True,
            timeout=180,
        )
    print(f"{target}  <- {url}", flush=True)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--output", default="docs/images")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    folder, env = isolated_store(None, "skinml-prefect-ui-")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env.update(PREFECT_HOME=str(folder / "prefect"), PREFECT_API_URL=api, PREFECT_UI_API_URL=api)
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    schedule = None
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    recipe = [
        "--data-dir",
        str(Path(args.data_dir).resolve()),
        "--weights",
        weights_argument(args.weights),
        "--epochs",
        str(args.epochs),
    ]
    try:
        wait_until_up(f"{api}/health", server)
        subprocess.run(
            [str(BIN / "skinml"), "pipeline", *recipe, "--output", "pipeline.json"],
            env=env,
            cwd=folder,
            check=True,
            capture_output=True,
        )
        schedule = subprocess.Popen(
            [str(BIN / "skinml"), "schedule", "--cron", "0 3 * * 0", *recipe],
            env=env,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.environ.update(PREFECT_API_URL=api)
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as prefect:
            flow_run = next(run for run in prefect.read_flow_runs() if run.name.startswith("pipeline "))
            artifact = next(
                a for a in prefect.read_artifacts() if a.key == "pipeline-result" and a.flow_run_id == flow_run.id
            )
            deadline = time.time() + 180
            while not (deployments := prefect.read_deployments()) and time.time() < deadline:
                time.sleep(2)
            if not deployments:
                sys.exit("skinml schedule served no deployment")
        ui = f"http://127.0.0.1:{port}"
        shoot(args.chromium, f"{ui}/runs/flow-run/{flow_run.id}", output / "prefect_flow_run.png")
        shoot(args.chromium, f"{ui}/artifacts/artifact/{artifact.id}", output / "prefect_artifact.png")
        shoot(args.chromium, f"{ui}/deployments/deployment/{deployments[0].id}", output / "prefect_deployment.png")
    finally:
        for process in (schedule, server):
            if process is not None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=60)


if __name__ == "__main__":
    main()
