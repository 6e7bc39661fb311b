"""Screenshots of the MLflow UI as a user sees it: the run list of an experiment, the compare view of its two latest
pipeline runs (the experiment's shared view `skinml`, skinml/tracking/ui_view.py, and MLflow's compare page), a train
run's charts and the registered model's page, taken with headless Chromium (Debian's
`chromium` package) from `mlflow ui` on 127.0.0.1 against a tracking store, saved as PNGs. See docs/mlflow.md.

    mlflow run . --env-manager local --experiment-name skinml -P data_dir=... -P weights=... -P learning_rate=0.001
    mlflow run . --env-manager local --experiment-name skinml -P data_dir=... -P weights=... -P learning_rate=0.0003
    python benchmarks/ui_screenshots.py --tracking-uri sqlite:///mlflow.db --output docs/images
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from skinml.core.names import CLASSES_TAG
from skinml.tracking.ui_view import classes_filter, view_key

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1920,1080",
    "--virtual-time-budget=60000",
]
# MLflow 3's UI opens in its GenAI view unless told (or once switched by the user, remembered by the browser)
VIEW = "workflowType=machine_learning"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            sys.exit("mlflow ui exited before answering")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    sys.exit(f"mlflow ui did not answer {url} within {timeout} s")


def pages(tracking_uri: str, experiment: str, model_name: str) -> dict[str, str]:
    """name -> UI route (after the '#') of each screenshot."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        sys.exit(f"no experiment {experiment!r} in {tracking_uri}")
    champion = client.get_model_version_by_alias(model_name, "champion")
    classes = client.get_run(champion.run_id).data.tags[CLASSES_TAG].split(",")
    pipelines = client.search_runs(
        [exp.experiment_id],
        f"tags.`skinml.stage` = 'pipeline' and {classes_filter(classes)}",
        order_by=["attributes.start_time DESC"],
        max_results=2,
    )
    if len(pipelines) < 2:
        sys.exit(f"experiment {experiment!r} needs two pipeline runs to compare; it has {len(pipelines)}")
    trains = client.search_runs(
        [exp.experiment_id], "tags.`skinml.stage` = 'train'", order_by=["attributes.start_time DESC"], max_results=1
    )
    runs = json.dumps([run.info.run_id for run in pipelines])
    experiments = json.dumps([exp.experiment_id])
    shared = f"/experiments/{exp.experiment_id}/runs?viewStateShareKey={view_key(classes)}"
    return {
        "run_list": f"{shared}&{VIEW}",
        "compare": f"{shared}&compareRunsMode=CHART&{VIEW}",
        "compare_page": f"/compare-runs?runs={urllib.parse.quote(runs)}&experiments={urllib.parse.quote(experiments)}"
        f"&{VIEW}",
        "train_charts": f"/experiments/{exp.experiment_id}/runs/{trains[0].info.run_id}/model-metrics?{VIEW}",
        "registry": f"/models/{model_name}?{VIEW}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="skinml")
    parser.add_argument("--model-name", default="skinml")
    parser.add_argument("--output", default="docs/images")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    routes = pages(args.tracking_uri, args.experiment, args.model_name)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            args.tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", server)
        for name, route in routes.items():
            target = output / f"mlflow_{name}.png"
            with tempfile.TemporaryDirectory() as profile:
                subprocess.run(
                    [
                        args.chromium,
                        *CHROMIUM_FLAGS,
                        f"--user-data-dir={profile}",
                        f"--screenshot={target.resolve()}",
                        f"http://127.0.0.1:{port}/#{route}",
                    ],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
            print(f"{target}  <- #{route}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
