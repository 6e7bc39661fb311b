"""Scheduled retraining through a real `prefect server start` on 127.0.0.1: `skinml schedule` serves the deployment,
`prefect deployment run` triggers it, the run completes and registers a new model version; triggered again on the same
data, the retrained challenger stays challenger (a gain within the noise)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from ..conftest import IMAGE_SIZE, free_port, http_status, stop_process, wait_for

BIN = Path(sys.executable).parent


def test_scheduled_retraining_registers_and_keeps_the_champion_on_unchanged_data(synthetic_dir, test_weights, tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    logs = tmp_path / "logs"
    logs.mkdir()
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=open(logs / "server.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client_env = {**env, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "2", "COLUMNS": "250"}
    scheduler = None
    try:
        wait_for(lambda: http_status(f"{api}/health") == 200, 120, "the Prefect server", [server])
        scheduler = subprocess.Popen(
            [
                str(BIN / "skinml"),
                "schedule",
                "--cron",
                "0 3 * * 0",
                "--timezone",
                "Europe/Vienna",
                "--data-dir",
                synthetic_dir.name,
                "--weights",
                test_weights,
                "--image-size",
                str(IMAGE_SIZE),
                "--epochs",
                "2",
                "--cached-views",
                "1",
            ],
            env=client_env,
            stdout=open(logs / "schedule.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=synthetic_dir.parent,
        )  # a relative data folder, as typed

        def deployment() -> str:
            done = subprocess.run(
                [str(BIN / "prefect"), "deployment", "inspect", "retrain/skinml-retrain"],
                env=client_env,
                capture_output=True,
                text=True,
            )
            return done.stdout if done.returncode == 0 else ""

        wait_for(deployment, 120, "deployment retrain/skinml-retrain", [server, scheduler])
        assert "0 3 * * 0" in deployment() and "Europe/Vienna" in deployment()
        assert f"'data_dir': '{synthetic_dir}'" in deployment()  # kept absolute: a worker may start anywhere
        assert "'entrypoint': 'flows.retrain.retrain_flow'" in deployment()  # the module: the same from any folder

        def run_now() -> None:
            """`prefect deployment run`, then wait for that flow run to complete."""
            triggered = subprocess.run(
                [str(BIN / "prefect"), "deployment", "run", "retrain/skinml-retrain"],
                env=client_env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert triggered.returncode == 0, triggered.stdout + triggered.stderr
            flow_run = re.search(r"UUID: ([0-9a-f-]{36})", triggered.stdout).group(1)

            def completed() -> bool:
                shown = subprocess.run(
                    [str(BIN / "prefect"), "flow-run", "inspect", flow_run],
                    env=client_env,
                    capture_output=True,
                    text=True,
                ).stdout
                assert "FAILED" not in shown and "CRASHED" not in shown, (
                    shown + (logs / "schedule.log").read_text()[-4000:]
                )
                return "COMPLETED" in shown

            wait_for(completed, 400, "the triggered retrain run", [server, scheduler])

        run_now()  # no champion yet: the baseline recipe, registered as v1, the champion
        client = MlflowClient()
        assert [v.version for v in client.search_model_versions("name='skinml'")] in (["1"], [1])
        run_now()  # the champion's recipe again on the same data: within the noise, the champion stays
        assert client.get_model_version_by_alias("skinml", "champion").version in ("1", 1)
        assert client.get_model_version_by_alias("skinml", "challenger").version in ("2", 2)
        promotion = mlflow.search_runs(
            experiment_names=["skinml"],
            output_format="list",
            filter_string="tags.`skinml.stage` = 'promote'",
            order_by=["start_time DESC"],
        )[0]
        decision = mlflow.artifacts.load_dict(f"runs:/{promotion.info.run_id}/promotion.json")
        low, high = decision["difference_ci95"]
        assert decision["promoted"] is False and low <= decision["difference"] <= high and low <= 0
        assert "did not become champion" in client.get_model_version("skinml", "2").description
    finally:
        for process in (scheduler, server):
            stop_process(process)
