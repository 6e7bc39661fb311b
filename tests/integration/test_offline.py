"""Nothing leaves the machine: real commands run under strace, as on a user's machine (no CI or pytest variables, a
HOME of their own), connect only to loopback, look up no name, and fork no process after starting threads."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow

from ..conftest import IMAGE_SIZE, free_port, stop_process, wait_for
from ..tracing import forks_after_threads, needs_strace, outside_connections, traced, user_environment

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
README_EXPORT = "export DO_NOT_TRACK=true PREFECT_SERVER_ANALYTICS_ENABLED=false"


def readme_opt_outs() -> dict[str, str]:
    """What the README's install step exports for MLflow's and Prefect's own commands."""
    assert README_EXPORT in (REPO / "README.md").read_text()
    return dict(word.split("=") for word in README_EXPORT.split()[1:])


def assert_stays_local(log: Path, what: str) -> None:
    assert log.exists(), f"{what}: no trace written"
    assert outside_connections(log) == [], f"{what} reached outside the machine"
    assert forks_after_threads(log) == [], f"{what} forked after starting threads"


def test_the_trace_reader_sees_a_name_lookup_and_a_fork_after_threads(tmp_path):
    """A few lines of a real trace (OpenVINO's telemetry with its consent file absent): the checks can fail."""
    log = tmp_path / "seen.strace"
    log.write_text(
        "3078  clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, exit_signal=0}"
        " => {parent_tid=[3079]}, 88) = 3079\n"
        "3079  clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>\n"
        '3078  connect(4, {sa_family=AF_INET, sin_port=htons(5000), sin_addr=inet_addr("127.0.0.1")}, 16) = 0\n'
        "3079  <... clone resumed>, child_tidptr=0x7f0a) = 3115\n"
        '3115  connect(5, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0\n'
        "3078  vfork( <unfinished ...>\n3078  <... vfork resumed>) = 3120\n"
        '3120  execve("/usr/bin/uname", ["uname", "-p"], 0x5572 /* 48 vars */) = 0\n'
        '3120  connect(3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.1")}, 16) = 0\n'
        "3078  connect(6, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), "
        'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH\n'
    )
    assert outside_connections(log) == [
        "pid 3078 (?) connect to 2001:db8::1 port 443",
        "pid 3115 (?) connect to 10.255.255.53 port 53",
        "pid 3120 (uname -p) connect to 10.0.0.1 port 53",
    ]
    assert forks_after_threads(log) == ["process 3078 forked 3115 after starting threads, and 3115 did not exec"]


@needs_strace
def test_every_command_stays_on_the_machine(synthetic_dir, test_weights, tmp_path):
    home = tmp_path / "home"
    env = {**user_environment(home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SKINML_ENGINE", None)  # OpenVINO, as for users: its model conversion is what sent telemetry
    shell = {**env, **readme_opt_outs()}  # MLflow's own commands, run as the README says
    recipe = [
        "--data-dir",
        str(synthetic_dir),
        "--weights",
        test_weights,
        "--image-size",
        str(IMAGE_SIZE),
        "--epochs",
        "2",
        "--cached-views",
        "1",
    ]
    image = str(next((synthetic_dir / "images").glob("*.jpg")))

    def run(name: str, command: list[str], environment: dict) -> str:
        log = tmp_path / f"{name}.strace"
        done = subprocess.run(traced(command, log), env=environment, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{name}: {done.stderr[-3000:]}"
        assert_stays_local(log, name)
        return done.stdout + done.stderr

    run("train", [str(BIN / "skinml"), "train", *recipe, "--output", "train.json"], env)
    trained = json.loads(Path("train.json").read_text())
    run("evaluate", [str(BIN / "skinml"), "evaluate", "--model-uri", trained["model_uri"]], env)
    assert (home / "intel" / "openvino_telemetry").read_text() == "0"  # OpenVINO's own opt-out, recorded

    logged = run(
        "mlflow-run",
        [
            str(BIN / "mlflow"),
            "run",
            str(REPO),
            "--env-manager",
            "local",
            "--experiment-name",
            "skinml",
            "-P",
            f"data_dir={synthetic_dir}",
            "-P",
            f"weights={test_weights}",
            "-P",
            "epochs=2",
            "-P",
            f"image_size={IMAGE_SIZE}",
            "-P",
            "cached_views=1",
        ],
        shell,
    )
    finished = [line for line in logged.splitlines() if "Finished in state" in line]
    assert len(finished) >= 7 and all("[" in line for line in finished), finished  # each names its run
    assert any("[train baseline size=32 epochs=2 views=1]" in line for line in finished), finished
    runs = mlflow.search_runs(experiment_names=["skinml"], filter_string="tags.mlflow.parentRunId != ''")
    assert set(runs["status"]) == {"FINISHED"}
    assert sorted(runs["tags.skinml.stage"]) == ["audit", "evaluate", "promote", "split", "train"]
    train_run = runs[runs["tags.skinml.stage"] == "train"].iloc[0]
    assert (train_run["params.epochs"], train_run["params.cached_views"]) == ("2", "1")  # undeclared: appended

    predicted = run("predict", [str(BIN / "skinml"), "predict", image, "--json"], env)
    assert re.search(r'"label": "(akiec|bcc|bkl|df|mel|nv|vasc)"', predicted)
    run("sweep", [str(BIN / "skinml"), "sweep", *recipe, "--n-trials", "2", "--no-retrain"], env)

    port, log = free_port(), tmp_path / "serve.strace"
    server = subprocess.Popen(
        traced(
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
            log,
        ),
        env=shell,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "w"),
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: ping(url), 180, "mlflow models serve", [server])
        body = json.dumps({"dataframe_records": [{"image": base64.b64encode(Path(image).read_bytes()).decode()}]})
        request = urllib.request.Request(
            f"{url}/invocations", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert "label" in json.loads(response.read())["predictions"][0]
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        stop_process(server)
    assert_stays_local(log, "mlflow models serve")


def ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
