"""Shared fixtures: tiny synthetic data, a calibrated random backbone, and an isolated MLflow/cache per test."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Prefect waits 20 s for its ephemeral API server, which a loaded 2-core machine can exceed (seen once, 2026-11-26).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# The tiny 32-px test models gain nothing from OpenVINO and each conversion costs seconds; the engines' agreement is
# tested in test_engine.py, and the model server in test_serving.py runs on the default (auto) engine.
os.environ.setdefault("SKINML_ENGINE", "tensorflow")
# Prefect's database of flow and task runs: the tests' own (one per test process), not the user's ~/.prefect, whose
# thousands of runs would also push the tests' runs out of the pages they read back.
if "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="skinml-tests-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)

import base64  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from skinml.data.synthetic import make_synthetic_ham  # noqa: E402

IMAGE_SIZE = 32


def wait_for(check, timeout: float, what: str, processes=()) -> None:
    """Poll `check` every 2 s until it is true; fail when `timeout` passes or one of `processes` exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"{what}: a process exited early ({process.args[:3]})")
        time.sleep(2)
    pytest.fail(f"timed out waiting for {what}")


def http_status(url: str, auth: str | None = None, data: bytes | None = None) -> int:
    """The HTTP status of a GET (or a JSON POST of `data`), with basic `auth` "user:password"; 0 if nothing listens."""
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def stop_process(process: subprocess.Popen | None) -> None:
    """SIGTERM the process group a test started (start_new_session=True), SIGKILL after 30 s."""
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, for servers the tests start."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KINDS = ("system", "integration", "unit")  # tests/<kind>/: the team stack, real processes and servers, neither


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its kind (its folder: `-m unit` selects), and run the longest kinds first: the team
    stack's test (~7 min), then the real processes. With two workers handed one test at a time (pyproject: `-n 2
    --maxschedchunk 1`), one runs the team test while the other runs most of the rest."""
    for item in items:
        kind = next(kind for kind in KINDS if f"tests/{kind}/" in item.nodeid or item.nodeid.startswith(f"{kind}/"))
        item.add_marker(kind)
    items.sort(key=lambda item: KINDS.index(next(m.name for m in item.iter_markers() if m.name in KINDS)))


def make_separable_set(dest: Path, n_per_class: int = 20) -> Path:
    """A HAM10000-layout folder whose classes a random backbone tells apart: each class one colour plus noise, one
    image per lesion. For tests that need a model clearly better than another (the promotion rule's)."""
    import pandas as pd
    from PIL import Image

    from skinml.data.dataset import HAM10000_CLASSES as CLASSES

    (dest / "images").mkdir(parents=True)
    rng, rows = np.random.default_rng(0), []
    for k, dx in enumerate(CLASSES):
        colour = np.array([k * 37 % 256, k * 91 % 256, k * 151 % 256])
        for i in range(n_per_class):
            image_id = f"ISIC_{k}{i:03d}"
            pixels = np.clip(colour + rng.normal(0, 12, (48, 64, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(dest / "images" / f"{image_id}.jpg")
            rows.append({"lesion_id": f"HAM_{k}{i:03d}", "image_id": image_id, "dx": dx})
    pd.DataFrame(rows).to_csv(dest / "HAM10000_metadata.csv", index=False)
    return dest


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A HAM10000-layout folder: 7 classes x 12 images (2 per lesion), 64x48 JPEGs."""
    return make_synthetic_ham(tmp_path_factory.mktemp("ham") / "data", n_per_class=12)


@pytest.fixture(scope="session")
def test_weights(tmp_path_factory, synthetic_dir) -> str:
    """A MobileNetV2 weights file with random kernels and BatchNorm statistics measured on the synthetic images.

    A randomly initialised, frozen MobileNetV2 (weights=none) outputs features of ~1e-13: its BatchNorm layers
    assume unit variance that the random kernels do not keep. Measuring the statistics once (one forward pass in
    training mode with momentum 0) gives informative random features, so a tiny head really learns in tests.
    """
    from skinml.data.dataset import load_dataset
    from skinml.data.loader import image_dataset

    keras.utils.set_random_seed(0)
    paths = load_dataset(synthetic_dir)["path"].tolist()
    images = np.concatenate([b.numpy() for b in image_dataset(paths, IMAGE_SIZE, 64)])
    backbone = keras.applications.MobileNetV2(input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), include_top=False, weights=None)
    batch_norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in batch_norms:
        layer.momentum = 0.0
    backbone(images / 127.5 - 1.0, training=True)
    path = tmp_path_factory.mktemp("weights") / "calibrated.weights.h5"
    backbone.save_weights(path)
    return str(path)


@pytest.fixture(scope="session", autouse=True)
def quiet_prefect_at_exit():
    """Prefect stops its ephemeral API server at interpreter exit and logs it, after pytest has closed the captured
    stream: a '--- Logging error ---' traceback under a green run (PrefectHQ/prefect#16626). After the last test,
    Prefect's info lines are dropped."""
    yield
    import logging

    logging.getLogger("prefect").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def isolated_tracking(tmp_path, monkeypatch):
    """Each test gets its own MLflow store and feature cache, and runs in its own folder."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("SKINML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # a run a previous test started set it
    monkeypatch.chdir(tmp_path)
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    # an experiment a previous test of this process set is not in this store: back to MLflow's default (MLflow
    # has no public call that forgets it without opening the store)
    mlflow.tracking.fluent._active_experiment_id = None
    yield
    while mlflow.active_run():
        mlflow.end_run()
