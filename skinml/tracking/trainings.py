"""A training result logged to the active MLflow run: its curves, calibration figures, the decisions' thresholds,
the time the features took, and the classifier as a pyfunc model."""

from __future__ import annotations

import mlflow
from mlflow.models.model import ModelInfo

from skinml.core.names import FAMILIARITY_THRESHOLD_METRIC, FEATURE_SECONDS_TAG, TRAINING_CURVES_ARTIFACT
from skinml.evaluation.decisions import chosen_thresholds
from skinml.evaluation.plots import training_curves
from skinml.tracking.model_store import log_classifier
from skinml.training.fit import TrainingResult


def log_training(result: TrainingResult, classes: tuple[str, ...]) -> ModelInfo:
    """Log `result` to the active run; returns the logged model's MLflow ModelInfo."""
    if result.feature_seconds is not None:
        mlflow.set_tag(FEATURE_SECONDS_TAG, f"{result.feature_seconds:.1f}")
    mlflow.log_metrics(result.calibration)
    mlflow.log_figure(training_curves(result.history), TRAINING_CURVES_ARTIFACT)
    mlflow.log_metrics(chosen_thresholds(result.decisions))
    mlflow.log_metric(FAMILIARITY_THRESHOLD_METRIC, result.familiarity.threshold)
    return log_classifier(result.classifier, classes, result.decisions, familiarity=result.familiarity)
