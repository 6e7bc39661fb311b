"""A real `mlflow models serve` process on 127.0.0.1, asked in each of MLflow's JSON forms."""

import base64
import concurrent.futures
import io
import json
import os
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

from skinml.app.cli import main
from skinml.app.predict import predict_files
from skinml.core.recipe import TrainConfig
from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.data.dataset import load_dataset
from skinml.data.loader import image_dataset
from skinml.registry.versions import register
from skinml.serving.classifier import (
    InvalidImageError,
    ModelFailure,
    SkinLesionClassifier,
    image_bytes,
)
from skinml.stages.train import train
from skinml.tracking.model_store import load_keras_model, load_model, request_frame

from ..conftest import IMAGE_SIZE, free_port


def send(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    """The status and the raw answer of a POST."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post(url: str, payload) -> tuple[int, dict]:
    status, answer = send(url, payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    return status, json.loads(answer or b"{}")


@pytest.fixture
def server(synthetic_dir, test_weights, tmp_path):
    trained = train(
        TrainConfig(
            weights=test_weights, image_size=IMAGE_SIZE, epochs=2, cached_views=1, target_balanced_accuracy=0.05
        ),
        synthetic_dir,
    )  # a deferral even a tiny model reaches
    register(trained["model_uri"])
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SKINML_ENGINE": "auto",  # OpenVINO on a CPU, as for users
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",  # the model is logged as code, not as a pickle
        "SKINML_SERVE_MAX_ROWS": "24",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
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
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "w"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(1)
        if process.poll() is not None:
            pytest.fail(f"mlflow models serve exited: {(tmp_path / 'serve.log').read_text()[-3000:]}")
    else:
        process.kill()
        pytest.fail("mlflow models serve did not answer /ping within 180 s")
    yield url
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


def test_served_model_answers_every_json_form_and_rejects_garbage(server, synthetic_dir, subtests):
    paths = load_dataset(synthetic_dir)["path"].tolist()[:3]
    images = [base64.b64encode(Path(p).read_bytes()).decode() for p in paths]
    png = io.BytesIO()
    Image.open(paths[0]).save(png, format="PNG")
    images.append(base64.b64encode(png.getvalue()).decode())
    forms = {
        "dataframe_records": {"dataframe_records": [{"image": b} for b in images]},
        "dataframe_split": {"dataframe_split": {"columns": ["image"], "data": [[b] for b in images]}},
        "inputs": {"inputs": {"image": images}},
    }
    with subtests.test("every JSON form is answered alike"):
        answers = {}
        for form, payload in forms.items():
            status, body = post(f"{server}/invocations", payload)
            assert status == 200, (form, body)
            rows = body["predictions"]
            assert len(rows) == 4, form
            for row in rows:
                columns = {*CLASSES, "label", "p_positive", "refer", "defer", "familiarity_distance", "unfamiliar"}
                assert set(row) == columns and row["label"] in CLASSES
                assert row["refer"] in (True, False, None) and row["defer"] in (True, False)
                assert abs(row["p_positive"] - row["akiec"] - row["bcc"] - row["mel"]) < 1e-6
                assert abs(sum(row[c] for c in CLASSES) - 1) < 1e-4
            answers[form] = np.array([[row[c] for c in CLASSES] for row in rows])
        np.testing.assert_allclose(answers["dataframe_split"], answers["dataframe_records"], rtol=1e-5)
        np.testing.assert_allclose(answers["inputs"], answers["dataframe_records"], rtol=1e-5)

    # The server (OpenVINO on a CPU) answers what the registered Keras model (run by TensorFlow) computes.
    with subtests.test("the server answers what the Keras model computes"):
        keras_model = load_keras_model("models:/skinml@champion")
        pixels = np.concatenate([batch.numpy() for batch in image_dataset(paths, IMAGE_SIZE, 8)])
        np.testing.assert_allclose(answers["inputs"][:3], keras_model.predict_on_batch(pixels), atol=1e-4)

    # the request that MLflow stored beside the model, for users to copy, is answered too
    with subtests.test("the stored serving example is answered"):
        model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri="models:/skinml@champion"))
        status, body = post(f"{server}/invocations", (model_dir / "serving_input_example.json").read_bytes())
        assert status == 200 and len(body["predictions"]) == 1 and body["predictions"][0]["label"] in CLASSES

    # more rows than one chunk (16) are answered chunk by chunk, the same as alone; more than the limit are refused
    with subtests.test("chunks, and requests over the limits"):
        status, body = post(f"{server}/invocations", {"inputs": {"image": images * 5}})
        assert status == 200 and len(body["predictions"]) == 20
        chunked = np.array([[row[c] for c in CLASSES] for row in body["predictions"]])
        np.testing.assert_allclose(chunked[16:20], answers["inputs"], atol=1e-5)
        status, body = post(f"{server}/invocations", {"inputs": {"image": images * 7}})
        assert status == 413 and "28 images in one request; the limit is 24 (SKINML_SERVE_MAX_ROWS)" in body["message"]
        status, body = post(f"{server}/invocations", {"inputs": {"image": ["A" * 7_000_000] * 7}})  # a 49 MB body
        assert status == 413 and "the limit is 32000000 (SKINML_SERVE_MAX_REQUEST_BYTES)" in body["message"]

    with subtests.test("bad images get a short 4xx naming the problem"):
        huge = io.BytesIO()
        Image.new("L", (8000, 6000)).save(huge, format="PNG")  # 48 MP: refused before decoding
        garbage = {
            "is not valid base64": "%%% definitely not base64 %%%",
            "not a JPEG/PNG image": base64.b64encode(b"just some text").decode(),
            "is empty": "",
            "too large": base64.b64encode(huge.getvalue()).decode(),
            "over the limit of 8000000 bytes": "A" * 12_000_000,  # refused before its base64 is decoded
        }
        for problem, value in garbage.items():
            request = {"dataframe_records": [{"image": images[0]}, {"image": value}]}
            status, body = post(f"{server}/invocations", request)
            assert 400 <= status < 500, (problem, status, body)
            assert problem in body.get("message", ""), (problem, body)
            assert len(body["message"]) < 200  # the request is not echoed back
        status, _ = post(f"{server}/invocations", b"{this is not json")
        assert 400 <= status < 500

    # requests that MLflow's own schema checks answered with the whole request: short answers naming the problem
    with subtests.test("MLflow's schema errors do not carry the request"):
        record = json.dumps({"dataframe_records": [{"image": images[0]}]})
        wrong_forms = [
            ("the request is JSON sent as text/csv", record, "text/csv"),
            ("no images in the request", json.dumps({"dataframe_records": []}), "application/json"),
            (
                "no column 'image' in the request",
                json.dumps({"dataframe_records": [{"img": images[0]}]}),
                "application/json",
            ),
            ("no column 'image' in the request", f"img\n{images[0]}\n", "text/csv"),
            ("no column 'image' in the request", json.dumps({"inputs": {"img": images[:2]}}), "application/json"),
        ]
        pieces = {images[0][i : i + 40] for i in range(0, len(images[0]) - 40, 40)}
        for problem, body, content_type in wrong_forms:
            status, answer = send(f"{server}/invocations", body.encode(), content_type)
            assert status == 400 and len(answer) < 1000, (problem, status, answer[:300])
            assert problem in json.loads(answer)["message"] and "Traceback" not in answer.decode()
            assert not any(piece.encode() in answer for piece in pieces), problem  # no part of the image comes back
        status, body = post(f"{server}/invocations", {"inputs": {"image": images[:2], "other": images[:1]}})
        assert status == 200 and len(body["predictions"]) == 2  # another column is ignored, whatever its length
        status, answer = send(f"{server}/invocations", f"image\n{images[0]}\n".encode(), "text/csv")
        assert status == 200 and json.loads(answer)["predictions"][0]["label"] in CLASSES

    # MLflow's server runs predictions in a thread pool: clients at once each get their own answer, as alone
    with subtests.test("concurrent clients get their own answers"):
        alone = [post(f"{server}/invocations", {"inputs": {"image": [image]}}) for image in images]
        with concurrent.futures.ThreadPoolExecutor(8) as clients:
            at_once = list(
                clients.map(
                    lambda k: (k, post(f"{server}/invocations", {"inputs": {"image": [images[k % 4]]}})), range(48)
                )
            )
        for k, (status, body) in at_once:
            assert status == 200, body
            np.testing.assert_allclose(
                [body["predictions"][0][c] for c in CLASSES],
                [alone[k % 4][1]["predictions"][0][c] for c in CLASSES],
                atol=1e-6,
            )

    # the worker survived all of that
    with subtests.test("the worker survives"):
        assert post(f"{server}/invocations", forms["inputs"])[0] == 200


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and holds none: what a decompression bomb looks like to a reader."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_with_a_named_error():
    for side in (7000, 20000):  # over our limit; over Pillow's own, which it raises as it reads the header
        with pytest.raises(InvalidImageError, match="row 3: image .*too large"):
            image_bytes(base64.b64encode(png_header_only(side, side)).decode(), "row 3")


def test_an_unexpected_error_is_answered_in_one_line_without_the_request(monkeypatch):
    classifier = SkinLesionClassifier()
    monkeypatch.setattr(classifier, "predict_images", lambda images, first_row: 1 / 0)
    with pytest.raises(ModelFailure, match=r"^the model failed on this request \(ZeroDivisionError\)") as failure:
        classifier.predict(None, request_frame([png_header_only(20, 10)]))
    failure.value.message = "Failed to predict data '<the whole request>'"  # what MLflow's scoring server does
    assert failure.value.message.startswith("the model failed") and failure.value.get_http_status_code() == 500


def test_predict_names_the_file_of_a_decompression_bomb(tmp_path, capsys):
    bomb = tmp_path / "huge.png"
    bomb.write_bytes(png_header_only(20000, 20000))
    assert main(["predict", str(bomb), "--model-uri", "models:/skinml@champion"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"skinml predict: error: {bomb}: image is too large (limit 40000000 pixels)"
    ]


def test_predict_answers_the_readable_files_and_names_the_others(synthetic_dir, test_weights, tmp_path, capsys):
    model_uri = train(
        TrainConfig(
            weights=test_weights, image_size=IMAGE_SIZE, epochs=1, cached_views=1, target_balanced_accuracy=0.05
        ),
        synthetic_dir,
    )["model_uri"]
    capsys.readouterr()  # training's lines
    real = load_dataset(synthetic_dir)["path"].tolist()[0]
    fake, truncated = tmp_path / "fake.jpg", tmp_path / "truncated.jpg"
    fake.write_bytes(b"not an image")
    data = Path(real).read_bytes()
    truncated.write_bytes(data[: data.index(b"\xff\xda") + 20])  # cut in the scan: the header reads, the data not
    files = [str(fake), real, str(tmp_path / "missing.jpg"), str(truncated)]
    errors = [
        f"skinml predict: error: {fake}: not a JPEG/PNG image",
        f"skinml predict: error: {tmp_path / 'missing.jpg'}: no such file or directory",
        f"skinml predict: error: {truncated}: the image could not be decoded",
    ]
    assert main(["predict", *files, "--model-uri", model_uri]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == errors
    table = out.splitlines()
    assert len(table) == 2 and table[0].split()[0] == "file" and table[1].split()[0] == real
    row = dict(zip(table[0].split(), table[1].split()))
    assert row["label"] in CLASSES and row["refer"] in ("True", "False", "None") and row["defer"] in ("True", "False")
    assert main(["predict", *files, "--model-uri", model_uri, "--json"]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == errors
    assert [row["file"] for row in json.loads(out)["predictions"]] == [real]
    assert main(["predict", real, "--model-uri", model_uri]) == 0  # all readable


SERVED_IN_A_NEW_PROCESS = """
import json, sys
from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.app.predict import predict_files
table, problems = predict_files("models:/skinml@champion", sys.argv[1:])
assert not problems, problems
print(json.dumps({"probabilities": table[list(CLASSES)].to_numpy().tolist(),
                  "tensorflow": "tensorflow" in sys.modules}))
"""


def test_the_logged_model_answers_from_its_openvino_form_without_tensorflow(synthetic_dir, test_weights, monkeypatch):
    trained = train(TrainConfig(weights=test_weights, image_size=IMAGE_SIZE, epochs=1, cached_views=1), synthetic_dir)
    register(trained["model_uri"])
    model_dir = Path(mlflow.artifacts.download_artifacts(trained["model_uri"]))
    files = set(os.listdir(model_dir / "artifacts" / "openvino"))
    assert files == {"classifier.xml", "classifier.bin"}
    paths = load_dataset(synthetic_dir)["path"].tolist()[:5]
    done = subprocess.run(
        [sys.executable, "-c", SERVED_IN_A_NEW_PROCESS, *paths],
        env={**os.environ, "SKINML_ENGINE": "auto"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["tensorflow"] is False  # Pillow decodes, OpenVINO resizes and classifies
    monkeypatch.setenv("SKINML_ENGINE", "auto")  # as for users: the Keras model is still there for evaluation
    keras_model = load_keras_model("models:/skinml@champion")
    pixels = np.concatenate([batch.numpy() for batch in image_dataset(paths, IMAGE_SIZE, 8)])
    np.testing.assert_allclose(answer["probabilities"], keras_model.predict_on_batch(pixels), atol=1e-4)
    monkeypatch.setenv("SKINML_SERVE_MAX_ROWS", "2")  # more files than one request may hold: several requests
    table, problems = predict_files("models:/skinml@champion", paths)
    assert problems == []
    assert table["file"].tolist() == paths
    np.testing.assert_allclose(table[list(CLASSES)].to_numpy(), answer["probabilities"], atol=1e-6)


def test_each_serving_form_answers_threads_at_once_as_alone(synthetic_dir, test_weights, monkeypatch, subtests):
    trained = train(TrainConfig(weights=test_weights, image_size=IMAGE_SIZE, epochs=1, cached_views=1), synthetic_dir)
    paths = load_dataset(synthetic_dir)["path"].tolist()[:6]
    requests = [request_frame([Path(p).read_bytes()]) for p in paths]
    for engine in ("openvino", "tensorflow"):
        with subtests.test(engine):
            monkeypatch.setenv("SKINML_ENGINE", engine)
            model = load_model(trained["model_uri"], check_requirements=False)
            alone = [model.predict(frame)[list(CLASSES)].to_numpy() for frame in requests]
            with concurrent.futures.ThreadPoolExecutor(6) as threads:
                at_once = list(
                    threads.map(lambda k: (k, model.predict(requests[k % 6])[list(CLASSES)].to_numpy()), range(36))
                )
            for k, answer in at_once:
                np.testing.assert_allclose(answer, alone[k % 6], atol=1e-6)
