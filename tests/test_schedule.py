"""Scheduled retraining through a real `prefect server start` on 127.0.0.1: `skinml schedule` serves the deployment,
`prefect deployment run` triggers it, the run completes and registers a new model version."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from .conftest import IMAGE_SIZE, free_port, http_status, stop_process, wait_for

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_schedule_serves_a_cron_deployment_whose_triggered_run_registers_a_model(synthetic_dir, test_weights,
                                                                                 tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    logs = tmp_path / "logs"
    logs.mkdir()
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    client_env = {**env, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "2", "COLUMNS": "250"}
    scheduler = None
    try:
        wait_for(lambda: http_status(f"{api}/health") == 200, 120, "the Prefect server", [server])
        scheduler = subprocess.Popen(
            [str(BIN / "skinml"), "schedule", "--cron", "0 3 * * 0", "--data-dir", str(synthetic_dir),
             "--weights", test_weights, "--image-size", str(IMAGE_SIZE), "--epochs", "2", "--cached-views", "1"],
            env=client_env, stdout=open(logs / "schedule.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)

        def deployment() -> str:
            done = subprocess.run([str(BIN / "prefect"), "deployment", "inspect", "retrain/skinml-retrain"],
                                  env=client_env, capture_output=True, text=True)
            return done.stdout if done.returncode == 0 else ""

        wait_for(deployment, 120, "deployment retrain/skinml-retrain", [server, scheduler])
        assert "0 3 * * 0" in deployment()
        triggered = subprocess.run([str(BIN / "prefect"), "deployment", "run", "retrain/skinml-retrain"],
                                   env=client_env, capture_output=True, text=True, timeout=60)
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr

        def completed() -> bool:
            done = subprocess.run([str(BIN / "prefect"), "flow-run", "ls"], env=client_env, capture_output=True,
                                  text=True)
            assert "FAILED" not in done.stdout.upper() and "CRASHED" not in done.stdout.upper(), \
                done.stdout + (logs / "schedule.log").read_text()[-4000:]
            return "COMPLETED" in done.stdout.upper()

        wait_for(completed, 400, "the triggered retrain run", [server, scheduler])
        versions = MlflowClient().search_model_versions("name='skinml'")
        assert len(versions) == 1
        assert MlflowClient().get_model_version_by_alias("skinml", "champion").version in ("1", 1)
    finally:
        for process in (scheduler, server):
            stop_process(process)
