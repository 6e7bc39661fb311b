"""A training result logged to MLflow (skinml.tracking.trainings.log_training): the curves plot, the calibration
figures, the thresholds chosen on validation, the time the features took and the classifier as a pyfunc model."""

import dataclasses
import json

import mlflow
import numpy as np
import pytest
from PIL import Image

from skinml.core.labels import METADATA_KEY
from skinml.core.names import DECISIONS_KEY, FEATURE_SECONDS_TAG, TEMPERATURE_METRIC, TRAINING_CURVES_ARTIFACT
from skinml.core.recipe import TrainConfig
from skinml.data.training_set import labelled_split
from skinml.serving.classifier import SkinLesionClassifier
from skinml.tracking.logged_model import LoggedModel
from skinml.tracking.trainings import log_training
from skinml.training.fit import fit_classifier

from ..conftest import IMAGE_SIZE


@pytest.fixture(scope="module")
def trained(synthetic_dir, test_weights):
    """A tiny classifier with a temperature, trained with no MLflow run, and its classes."""
    config = TrainConfig(
        weights=test_weights,
        image_size=IMAGE_SIZE,
        epochs=2,
        cached_views=1,
        batch_size=16,
        temperature_scaling=True,
        target_sensitivities=(0.8, 0.9),
        target_balanced_accuracy=0.05,
    )
    data, _, classes = labelled_split(synthetic_dir, None, config)
    return fit_classifier(config, data, classes), classes


def test_log_training_writes_the_curves_calibration_thresholds_and_model(trained, tmp_path):
    result, classes = trained
    mlflow.set_experiment("tracking-parts")  # a new store: no experiment an earlier test made active
    with mlflow.start_run() as run:
        info = log_training(result, classes)
    logged, client = mlflow.get_run(run.info.run_id).data, mlflow.MlflowClient()

    assert logged.tags[FEATURE_SECONDS_TAG] == f"{result.feature_seconds:.1f}"
    assert result.calibration[TEMPERATURE_METRIC] > 0
    assert {k: logged.metrics[k] for k in result.calibration} == pytest.approx(result.calibration)
    points = result.decisions["operating_points"]
    assert [p["target_sensitivity"] for p in points] == [0.8, 0.9]
    assert logged.metrics["val_sens80_threshold"] == pytest.approx(points[0]["threshold"])
    assert logged.metrics["val_sens90_threshold"] == pytest.approx(points[1]["threshold"])
    assert logged.metrics["val_defer_confidence"] == pytest.approx(result.decisions["deferral"]["confidence"])
    assert not [name for name in logged.metrics if name.startswith(("train_", "test_"))]  # epochs: log_epoch's

    curves = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path=TRAINING_CURVES_ARTIFACT, dst_path=str(tmp_path)
    )
    with Image.open(curves) as image:
        assert image.format == "PNG" and image.width > image.height  # three panels side by side

    assert info.run_id == run.info.run_id
    assert info.metadata[METADATA_KEY] == list(classes) and info.metadata[DECISIONS_KEY] == result.decisions
    model = LoggedModel.resolve(info.model_uri)
    assert model.classes == classes and model.decisions == result.decisions and model.run_id == run.info.run_id
    model_files = {a.path.split("/")[-1] for a in client.list_logged_model_artifacts(info.model_id, "artifacts")}
    assert {"classes.json", "decisions.json", "classifier.keras"} <= model_files

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert isinstance(loaded.unwrap_python_model(), SkinLesionClassifier)
    shipped = loaded.unwrap_python_model().model
    assert shipped.get_layer("temperature") is not None  # the classifier as it ships, temperature included
    pixels = np.random.default_rng(0).uniform(0, 255, (3, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    np.testing.assert_allclose(
        shipped.predict(pixels, verbose=0), result.classifier.predict(pixels, verbose=0), atol=1e-6
    )
    assert json.loads(json.dumps(result.decisions)) == loaded.unwrap_python_model().decisions


def test_an_end_to_end_result_has_no_feature_time_tag(trained):
    result, classes = trained
    end_to_end = dataclasses.replace(result, feature_seconds=None)
    mlflow.set_experiment("tracking-parts")  # a new store: no experiment an earlier test made active
    with mlflow.start_run() as run:
        log_training(end_to_end, classes)
    logged = mlflow.get_run(run.info.run_id).data
    assert FEATURE_SECONDS_TAG not in logged.tags
    assert logged.metrics[TEMPERATURE_METRIC] == pytest.approx(result.calibration[TEMPERATURE_METRIC])


def test_classes_that_do_not_fit_the_classifier_are_refused(trained):
    result, classes = trained
    mlflow.set_experiment("tracking-parts")  # a new store: no experiment an earlier test made active
    with mlflow.start_run(), pytest.raises(ValueError, match=r"the model has 7 outputs for 2 classes"):
        log_training(result, classes[:2])
