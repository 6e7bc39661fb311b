"""The served model's request form and errors (skinml.serving.request_form), and the code MLflow runs to load a
logged model (skinml.serving.model_code)."""

import base64
import importlib.util
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE, ErrorCode
from mlflow.pyfunc.scoring_server import _SERVER_MODEL_PATH

from skinml.core.recipe import TrainConfig
from skinml.data.loader import image_dataset
from skinml.data.training_set import labelled_split
from skinml.serving.classifier import SkinLesionClassifier, check_request_size, image_bytes, in_http_server
from skinml.serving.request_form import (
    IMAGE_COLUMN,
    InvalidImageError,
    ModelFailure,
    RequestTooLargeError,
    ServingError,
    image_values,
)
from skinml.tracking.model_store import log_classifier, request_frame
from skinml.training.fit import fit_classifier

from ..conftest import IMAGE_SIZE


@pytest.mark.parametrize(
    "request_input",
    [
        pd.DataFrame({"image": ["a", "b"]}),  # dataframe_records, dataframe_split, CSV, Parquet
        {"image": ["a", "b"]},  # `inputs` / `instances` as columns
        [{"image": "a"}, {"image": "b"}],  # `inputs` as records
        ["a", "b"],  # a bare list of images
        np.array(["a", "b"]),
    ],
    ids=["frame", "columns", "records", "list", "array"],
)
def test_the_images_are_found_in_every_form_mlflow_parses(request_input):
    assert image_values(request_input) == ["a", "b"]


def test_one_image_not_in_a_list_is_one_row():
    assert image_values({"image": "a"}) == ["a"]
    assert image_values({"image": b"raw"}) == [b"raw"]
    assert image_values({"image": np.array("a")}) == ["a"]


def test_zero_dimensional_arrays_in_a_column_become_their_values():
    assert image_values({"image": [np.array("a"), "b"]}) == ["a", "b"]


def test_other_columns_are_left_aside():
    assert image_values(pd.DataFrame({"id": [1, 2], "image": ["a", "b"]})) == ["a", "b"]


def test_the_column_mlflow_names_by_position_is_the_image_column():
    # spark_udf names an unnamed argument of a model without an input schema by its place: udf("content") -> "0"
    assert image_values(pd.DataFrame({"0": [b"x", b"y"]})) == [b"x", b"y"]
    assert image_values(pd.DataFrame({"0": ["a"], "1": ["b"]})) == ["a"]
    assert image_values(pd.DataFrame({"0": ["a"], "image": ["b"]})) == ["b"]  # a column `image` comes first


@pytest.mark.parametrize(
    ("request_input", "message"),
    [
        (
            pd.DataFrame({'{"dataframe_records": [{"image": "x"}]}': []}),
            "the request is JSON sent as text/csv: send it as Content-Type: application/json",
        ),
        (pd.DataFrame({"image": []}), "no images in the request"),
        (pd.DataFrame([["a", "b"]], columns=["image", "image"]), "more than one column 'image' in the request"),
        (
            pd.DataFrame({"picture": ["a"]}),
            "no column 'image' in the request: send base64-encoded JPEG/PNG files in a column 'image'",
        ),
        ({"picture": ["a"]}, "no column 'image' in the request"),
        (42, "no column 'image' in the request"),
        ({"image": []}, "no images in the request"),
        ([], "no images in the request"),
    ],
    ids=[
        "json-as-csv",
        "no-rows",
        "two-image-columns",
        "no-image-column",
        "dict-without-image",
        "a-number",
        "empty-column",
        "empty-list",
    ],
)
def test_a_request_of_the_wrong_form_is_one_short_line(request_input, message):
    with pytest.raises(InvalidImageError) as caught:
        image_values(request_input)
    assert caught.value.message.startswith(message) and "\n" not in caught.value.message
    assert caught.value.get_http_status_code() == 400


def test_the_errors_carry_their_http_status_and_error_code():
    invalid, too_large, failure = InvalidImageError("bad"), RequestTooLargeError("big"), ModelFailure("oops")
    assert invalid.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE) and invalid.get_http_status_code() == 400
    assert too_large.get_http_status_code() == 413 and isinstance(too_large, InvalidImageError)
    assert failure.error_code == ErrorCode.Name(INTERNAL_ERROR) and failure.get_http_status_code() == 500
    assert all(isinstance(error, ServingError) for error in (invalid, too_large, failure))


def test_the_first_message_is_kept_when_mlflow_rewrites_it():
    error = InvalidImageError("row 3: not a JPEG/PNG image")
    error.message = "Failed to predict data '" + "A" * 1000 + "'. Error: row 3: not a JPEG/PNG image"
    assert error.message == "row 3: not a JPEG/PNG image"
    assert json.loads(error.serialize_as_json())["message"] == "row 3: not a JPEG/PNG image"


@pytest.fixture(scope="module")
def trained(synthetic_dir, test_weights):
    """A tiny classifier trained with no MLflow run, its classes and decisions."""
    config = TrainConfig(weights=test_weights, image_size=IMAGE_SIZE, epochs=1, cached_views=1, batch_size=16)
    data, _, classes = labelled_split(synthetic_dir, None, config)
    return fit_classifier(config, data, classes), classes


def test_a_logged_model_loads_through_the_model_code_as_a_skin_lesion_classifier(trained, synthetic_dir, monkeypatch):
    result, classes = trained
    mlflow.set_experiment("serving-parts")  # a new store: no experiment an earlier test made active
    with mlflow.start_run():
        info = log_classifier(result.classifier, classes, result.decisions)
    folder = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    flavor = mlflow.models.Model.load(folder / "MLmodel").flavors["python_function"]
    assert flavor["model_code_path"].endswith("model_code.py")  # models from code: the file runs at load time
    assert (folder / flavor["model_code_path"]).read_text().count("set_model(SkinLesionClassifier())") == 1
    assert not list(folder.rglob("*.pkl"))  # no pickled Python object

    paths = sorted((synthetic_dir / "images").iterdir())[:4]
    images = [path.read_bytes() for path in paths]
    answers = {}
    for engine in ("tensorflow", "auto"):
        monkeypatch.setenv("SKINML_ENGINE", engine)
        model = mlflow.pyfunc.load_model(info.model_uri)
        classifier = model.unwrap_python_model()
        assert type(classifier) is SkinLesionClassifier
        assert classifier.classes == classes and classifier.decisions == result.decisions
        answers[engine] = model.predict(request_frame(images))
        assert list(answers[engine].columns[: len(classes) + 1]) == ["label", *classes]  # spark_udf's "string": label
        assert set(answers[engine]["label"]) <= set(classes)
        with pytest.raises(InvalidImageError, match="row 0: 'image' is not valid base64"):
            model.predict(pd.DataFrame({IMAGE_COLUMN: ["%%%"]}))
        with pytest.raises(InvalidImageError, match="row 1: no image"):
            model.predict(pd.DataFrame({IMAGE_COLUMN: [images[0], None]}))
    if importlib.util.find_spec("openvino") is not None:
        assert classifier.openvino is not None  # `auto` where OpenVINO is installed: the OpenVINO form
        # loaded again from one folder (spark_udf, each partition): compiled once per process, until a file changes
        first, second = (mlflow.pyfunc.load_model(str(folder)).unwrap_python_model() for _ in range(2))
        assert first.openvino is second.openvino
        (folder / "artifacts" / "openvino" / "classifier.xml").touch()
        assert mlflow.pyfunc.load_model(str(folder)).unwrap_python_model().openvino is not first.openvino
    np.testing.assert_allclose(answers["tensorflow"][list(classes)], answers["auto"][list(classes)], atol=1e-4)

    pixels = np.concatenate([batch.numpy() for batch in image_dataset([str(p) for p in paths], IMAGE_SIZE, 8)])
    expected = result.classifier.predict(pixels, verbose=0)  # what the Keras classifier says of the same files
    np.testing.assert_allclose(answers["tensorflow"][list(classes)].to_numpy(), expected, atol=1e-5)


def test_mime_base64_with_line_breaks_is_the_same_image(synthetic_dir):
    data = sorted((synthetic_dir / "images").iterdir())[0].read_bytes()
    mime = base64.encodebytes(data).decode().replace("\n", "\r\n")  # Spark's base64(): lines of 76, CRLF
    assert "\r\n" in mime.strip() and image_bytes(mime, "row 0") == data


def test_the_request_limits_bound_the_http_server_and_not_a_batch_call(monkeypatch):
    monkeypatch.setenv("SKINML_SERVE_MAX_ROWS", "2")
    monkeypatch.delenv(_SERVER_MODEL_PATH, raising=False)
    assert not in_http_server()  # pyfunc.predict, spark_udf's Python worker, `mlflow models predict`
    monkeypatch.setenv(_SERVER_MODEL_PATH, "/models/m")  # what MLflow's scoring server runs with
    assert in_http_server()
    with pytest.raises(RequestTooLargeError, match="3 images in one request; the limit is 2"):
        check_request_size(["a", "b", "c"])
