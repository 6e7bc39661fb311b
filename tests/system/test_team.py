"""The team setup with real servers: `deploy/stack up` (PostgreSQL, MLflow tracking server with basic-auth and
proxied artifacts, Prefect server with an auth string), two sweep workers from their own folders sharing one study
on PostgreSQL (one killed mid-trial), a retrain run through a Prefect work pool, `mlflow models serve` from a fourth
folder, and `deploy/stack down` leaving nothing behind. Needs PostgreSQL's server binaries (Debian's `postgresql`
package, which `.ci/run` installs)."""

import base64
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from ..conftest import IMAGE_SIZE, free_port, http_status, stop_process, wait_for
from ..tracing import forks_after_threads, needs_strace, outside_connections, traced, user_environment

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
STACK = [sys.executable, str(REPO / "deploy" / "stack")]
N_TRIALS = 6

pytestmark = pytest.mark.skipif(
    not (shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
    reason="PostgreSQL's server binaries are not installed (apt-get install postgresql)",
)


def exports(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)='(.*)'$", stdout, re.MULTILINE))


def start(command: list[str], folder: Path, env: dict, log: str) -> subprocess.Popen:
    folder.mkdir(exist_ok=True)
    return subprocess.Popen(
        command, cwd=folder, env=env, stdout=open(folder / log, "w"), stderr=subprocess.STDOUT, start_new_session=True
    )


@needs_strace
def test_team_stack_workers_share_only_the_servers(synthetic_dir, test_weights, tmp_path, monkeypatch, subtests):
    # as root, PostgreSQL runs as user postgres, which cannot enter pytest's private tmp_path
    stack_dir = Path(tempfile.mkdtemp(prefix="skinml-stack-", dir="/tmp"))
    ports = {"--pg-port": free_port(), "--mlflow-port": free_port(), "--prefect-port": free_port()}
    up = [*STACK, "up", str(stack_dir), *[str(x) for pair in ports.items() for x in pair]]
    # `up` and the servers it starts run under strace until `down`, in a user's environment (no telemetry switches)
    user_env, stack_trace = user_environment(tmp_path / "home"), tmp_path / "stack.strace"
    tracer = subprocess.Popen(
        traced(up, stack_trace),
        env=user_env,
        stdout=open(tmp_path / "up.out", "w"),
        stderr=open(tmp_path / "up.err", "w"),
        start_new_session=True,
    )
    processes: list[subprocess.Popen] = []
    try:
        expected = {
            "MLFLOW_TRACKING_URI",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
            "PREFECT_API_URL",
            "PREFECT_API_AUTH_STRING",
            "SKINML_SWEEP_STORAGE",
            "MLFLOW_DISABLE_TELEMETRY",
            "DO_NOT_TRACK",
            "PREFECT_SERVER_ANALYTICS_ENABLED",
        }  # for mlflow's CLI
        wait_for(lambda: set(exports((tmp_path / "up.out").read_text())) == expected, 300, "deploy/stack up", [tracer])
        env_vars = exports((tmp_path / "up.out").read_text())
        assert oct((stack_dir / "secrets" / "mlflow_admin_password").stat().st_mode & 0o777) == "0o600"
        pids = json.loads((stack_dir / "stack.json").read_text())["pids"]

        tracking, api = env_vars["MLFLOW_TRACKING_URI"], env_vars["PREFECT_API_URL"]
        with subtests.test("nobody gets in without credentials"):
            search = f"{tracking}/api/2.0/mlflow/experiments/search?max_results=1"
            user = f"{env_vars['MLFLOW_TRACKING_USERNAME']}:{env_vars['MLFLOW_TRACKING_PASSWORD']}"
            assert http_status(search) == 401 and http_status(search, "admin:wrong") == 401
            assert http_status(search, user) == 200
            # the server remembers a verified password for a while (docs/team.md), never a wrong one
            assert http_status(search, "admin:wrong") == 401 and http_status(search, user) == 200
            assert "auth_cache_ttl_seconds = 60" in (stack_dir / "mlflow_auth.ini").read_text()
            flows = f"{api}/flows/filter"
            assert http_status(flows, data=b"{}") == 401
            assert http_status(flows, env_vars["PREFECT_API_AUTH_STRING"], data=b"{}") == 200
            import psycopg

            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(env_vars["SKINML_SWEEP_STORAGE"].replace("://skinml:", "://skinml:wrong"))

        with subtests.test("the Prefect UI points at the stack's own API"):
            with urllib.request.urlopen(f"{api.removesuffix('/api')}/ui-settings", timeout=10) as answer:
                assert json.loads(answer.read())["api_url"] == api  # on the stack's port, not Prefect's 4200

        with subtests.test("`up` again starts no second copy; a port in use is named"):
            again = subprocess.run(up, capture_output=True, text=True, timeout=60)
            assert again.returncode == 0 and "already runs" in again.stderr
            assert json.loads((stack_dir / "stack.json").read_text())["pids"] == pids
            with socket.socket() as busy:
                busy.bind(("127.0.0.1", 0))
                busy.listen()
                taken = busy.getsockname()[1]
                refused = subprocess.run(
                    [*STACK, "up", str(tmp_path / "other"), "--pg-port", str(taken)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
            assert refused.returncode == 1 and f"port {taken} on 127.0.0.1 is in use" in refused.stderr

        # workers: only the exports and their own folder and cache
        base_env = {k: v for k, v in user_env.items() if not k.startswith(("MLFLOW_", "PREFECT_", "SKINML_"))}
        env = {
            **base_env,
            **env_vars,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "COLUMNS": "250",
            "SKINML_ENGINE": "tensorflow",
            "SKINML_SWEEP_HEARTBEAT_SECONDS": "1",
            "SKINML_REPO_DIR": str(REPO),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }  # the pool's worker asks for work every 2 s, not 10
        for name in env_vars:
            monkeypatch.setenv(name, env_vars[name])
        mlflow.set_tracking_uri(tracking)
        recipe = [
            "--data-dir",
            str(synthetic_dir),
            "--weights",
            test_weights,
            "--image-size",
            str(IMAGE_SIZE),
            "--epochs",
            "3",
            "--cached-views",
            "1",
        ]
        sweep = [str(BIN / "skinml"), "sweep", *recipe, "--n-trials", str(N_TRIALS), "--study-name", "team"]
        folders = {name: tmp_path / name for name in ("a", "b", "c", "d")}

        def worker_env(name: str) -> dict:
            return {**env, "SKINML_CACHE_DIR": str(folders[name] / "cache")}

        client = mlflow.MlflowClient()
        with subtests.test("two sweep workers share one study; a killed one's trial is retried"):
            first = start(traced(sweep, tmp_path / "sweep.strace"), folders["a"], worker_env("a"), "sweep.log")
            processes.append(first)
            storage = env_vars["SKINML_SWEEP_STORAGE"]

            def study() -> optuna.Study | None:
                try:
                    return optuna.load_study(study_name="team", storage=storage)
                except KeyError:
                    return None

            wait_for(
                lambda: study() is not None and study().user_attrs.get("mlflow_parent_run_id"),
                180,
                "the study and its parent run",
                [first],
            )
            second = start([*sweep, "--no-retrain"], folders["b"], worker_env("b"), "sweep.log")
            processes.append(second)

            def second_in_a_trial() -> bool:
                return any(
                    t.state == TrialState.RUNNING
                    and t.user_attrs.get("worker", "").endswith(f":{second.pid}")
                    and "mlflow_run_id" in t.user_attrs
                    for t in study().trials
                )  # its MLflow run has begun

            wait_for(second_in_a_trial, 180, "the second worker's first trial", [first, second])
            os.killpg(second.pid, signal.SIGKILL)  # mid-trial
            assert first.wait(timeout=600) == 0, (folders["a"] / "sweep.log").read_text()[-4000:]
            assert outside_connections(tmp_path / "sweep.strace") == [], "a sweep worker reached outside the machine"
            assert forks_after_threads(tmp_path / "sweep.strace") == [], "a sweep worker forked after starting threads"

            trials = study().trials
            assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == N_TRIALS
            assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
            killed = [t for t in trials if t.state == TrialState.FAIL]
            assert len(killed) == 1 and killed[0].user_attrs["worker"].endswith(f":{second.pid}")
            assert len({t.user_attrs["worker"] for t in trials}) == 2  # both did a share
            assert client.get_run(killed[0].user_attrs["mlflow_run_id"]).info.status == "KILLED"
            parent = study().user_attrs["mlflow_parent_run_id"]
            nested = mlflow.search_runs(
                experiment_names=["skinml-sweeps"], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
            )
            assert len(nested[nested["tags.skinml.stage"] == "trial"]) == len(trials)
            assert set(nested["status"]) <= {"FINISHED", "KILLED"}
            assert client.get_model_version_by_alias("skinml", "champion").version == "1"  # the best, retrained

        # scheduled retraining through the work pool, picked up by a worker in another folder
        with subtests.test("scheduled retraining runs on the work pool's worker"):
            prefect = str(BIN / "prefect")
            for command in (
                [prefect, "work-pool", "create", "skinml", "--type", "process"],
                [prefect, "--no-prompt", "deploy", "--all"],
            ):
                done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
                assert done.returncode == 0, done.stdout + done.stderr
            pool_worker = start(
                [prefect, "worker", "start", "--pool", "skinml"], folders["c"], worker_env("c"), "worker.log"
            )
            processes.append(pool_worker)
            triggered = subprocess.run(
                [prefect, "deployment", "run", "retrain/skinml-retrain", "--param", f"data_dir={synthetic_dir}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert triggered.returncode == 0, triggered.stdout + triggered.stderr
            flow_run = re.search(r"UUID: ([0-9a-f-]{36})", triggered.stdout).group(1)

            def finished_run() -> bool:
                shown = subprocess.run(
                    [prefect, "flow-run", "inspect", flow_run], env=env, capture_output=True, text=True
                ).stdout
                log = (folders["c"] / "worker.log").read_text()[-4000:]
                assert "FAILED" not in shown and "CRASHED" not in shown, log
                return "COMPLETED" in shown

            wait_for(finished_run, 400, "the retrain run on the pool's worker", [pool_worker])
            assert {v.version for v in client.search_model_versions("name='skinml'")} == {"1", "2"}
            stop_process(pool_worker)

        # serving from a fourth folder: the model comes through the tracking server
        with subtests.test("serving from a fourth folder through the tracking server"):
            port = free_port()
            server = start(
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
                folders["d"],
                worker_env("d"),
                "serve.log",
            )
            processes.append(server)
            wait_for(lambda: http_status(f"http://127.0.0.1:{port}/ping") == 200, 180, "mlflow models serve", [server])
            image = base64.b64encode(next((synthetic_dir / "images").glob("*.jpg")).read_bytes()).decode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                json.dumps({"dataframe_records": [{"image": image}]}).encode(),
                {"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                assert "label" in json.loads(response.read())["predictions"][0]
            stop_process(server)

        # everything went through the servers: artifacts proxied, no local store in any worker's folder
        with subtests.test("everything went through the servers"):
            runs = mlflow.search_runs(search_all_experiments=True)
            assert {uri.split(":")[0] for uri in runs["artifact_uri"]} == {"mlflow-artifacts"}
            for folder in folders.values():
                assert not list(folder.glob("mlflow.db")) and not list(folder.glob("mlruns"))
    finally:
        for process in processes:
            stop_process(process)
        down = subprocess.run([*STACK, "down", str(stack_dir)], capture_output=True, text=True, timeout=120)
        tracer.wait(timeout=120)
    assert down.returncode == 0, down.stderr
    assert tracer.returncode == 0, (tmp_path / "up.err").read_text()
    assert outside_connections(stack_trace) == [], "deploy/stack's servers reached outside the machine"
    status = subprocess.run([*STACK, "status", str(stack_dir)], capture_output=True, text=True).stdout
    assert status.count("stopped") == 3, status
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists()
    for name, port in ports.items():
        with socket.socket() as probe:  # nothing listens any more
            assert probe.connect_ex(("127.0.0.1", port)) != 0, name
    shutil.rmtree(stack_dir, ignore_errors=True)
