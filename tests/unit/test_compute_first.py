"""Each stage's value is computed without an MLflow run (skinml.training, skinml.evaluation, the promotion rule) and
one tracking function logs it: the values checked here, and what the logging writes from them."""

import mlflow
import numpy as np
import pytest

from skinml.core.labels import class_indices
from skinml.core.names import CONFUSION_MATRIX_ARTIFACT, GRAD_CAM_ARTIFACT, TEMPERATURE_METRIC, VAL, metric_name
from skinml.core.recipe import TrainConfig
from skinml.data.training_set import labelled_split
from skinml.evaluation.metrics import flat_metrics
from skinml.evaluation.scoring import evaluate_classifier
from skinml.registry.promotion import decide
from skinml.tracking.evaluations import log_evaluation
from skinml.training.fit import fit_classifier

from ..conftest import IMAGE_SIZE


@pytest.fixture(scope="module")
def trained(synthetic_dir, test_weights):
    """A tiny classifier fitted with no MLflow run active, and each epoch's report."""
    config = TrainConfig(
        weights=test_weights,
        image_size=IMAGE_SIZE,
        epochs=3,
        cached_views=1,
        batch_size=16,
        temperature_scaling=True,
        target_balanced_accuracy=0.05,
    )
    data, _, classes = labelled_split(synthetic_dir, None, config)
    reports = []
    result = fit_classifier(config, data, classes, on_epoch=lambda epoch, figures: reports.append((epoch, figures)))
    return result, data, classes, reports


def test_training_is_a_value_computed_without_a_run(trained):
    result, data, classes, reports = trained
    assert mlflow.active_run() is None
    assert [epoch for epoch, _ in reports] == [1, 2, 3]
    assert result.history[metric_name(VAL, "balanced_accuracy")] == [
        f[metric_name(VAL, "balanced_accuracy")] for _, f in reports
    ]
    n_val = int((data["split"] == "val").sum())
    assert result.val_probs.shape == (n_val, len(classes))
    np.testing.assert_allclose(result.val_probs.sum(axis=1), 1.0, rtol=1e-5)
    assert result.calibration[TEMPERATURE_METRIC] > 0 and metric_name(VAL, "ece") in result.calibration
    assert result.decisions["positive_classes"] == ["akiec", "bcc", "mel"]
    assert result.classifier.get_layer("temperature") is not None  # shipped with its temperature
    assert result.feature_seconds is not None and result.feature_seconds >= 0


def test_an_evaluation_is_computed_without_a_run_and_logged_as_computed(trained):
    result, data, classes, _ = trained
    test = data[data["split"] == "test"].assign(dx=lambda d: d["dx"].astype(str)).reset_index(drop=True)
    evaluation = evaluate_classifier(result.classifier, test, classes, prefix="test", decisions=result.decisions)
    assert mlflow.active_run() is None
    metrics = evaluation.metrics
    assert metrics["n_images"] == len(test)
    predicted = evaluation.predictions[list(classes)].to_numpy().argmax(axis=1)
    accuracy = float(np.mean(predicted == class_indices(test["dx"], classes)))
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert (
        metrics["ci95"]["balanced_accuracy"][0]
        <= metrics["balanced_accuracy"]
        <= metrics["ci95"]["balanced_accuracy"][1]
    )
    assert {CONFUSION_MATRIX_ARTIFACT, GRAD_CAM_ARTIFACT} <= set(evaluation.figures)
    assert "Decisions:" in evaluation.report and "deferral" in metrics["decisions"]

    with mlflow.start_run() as run:
        log_evaluation(evaluation)
    logged = mlflow.get_run(run.info.run_id).data
    assert {k: logged.metrics[k] for k in flat_metrics(metrics, "test")} == pytest.approx(flat_metrics(metrics, "test"))
    assert logged.tags["skinml.n_images"] == str(len(test))
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert set(evaluation.figures) <= artifacts


def test_the_promotion_rule_is_a_value():
    evidence = {
        "champion_balanced_accuracy": 0.40,
        "challenger_balanced_accuracy": 0.47,
        "difference": 0.07,
        "difference_ci95": [0.02, 0.12],
        "n_images": 1431,
        "n_lesions": 1000,
    }
    promoted = decide("skinml", "1", "2", margin=0.0, evidence=evidence)
    assert promoted.promoted and promoted.reason.startswith("v2 became champion")
    kept = decide("skinml", "1", "2", margin=0.05, evidence=evidence)  # the interval's low end is not above it
    assert not kept.promoted and "not above the margin 0.05" in kept.reason
    same = decide("skinml", "1", "1", margin=0.0, evidence=None)
    assert not same.promoted and same.as_dict("run")["reason"].startswith("v1 is the champion already")
    assert "test_split_run_id" not in same.as_dict("run")
