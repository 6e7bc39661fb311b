"""An evaluation logged to the active MLflow run: what skinml.evaluation.scoring computed, as metrics, tags, plots,
the report, `metrics.json` and the predictions."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from skinml.core.names import (
    EVAL_DATA_TAG,
    GRAD_CAM_ARTIFACT,
    METRICS_ARTIFACT,
    N_IMAGES_TAG,
    PREDICTIONS_ARTIFACT,
    REPORT_ARTIFACT,
    SLICES_ARTIFACT,
)
from skinml.evaluation.decisions import decision_metrics
from skinml.evaluation.familiarity import familiarity_metrics
from skinml.evaluation.metrics import flat_metrics, interval_metrics
from skinml.evaluation.scoring import Evaluation
from skinml.tracking.runs import log_dataset

JPEG_QUALITY = {"pil_kwargs": {"quality": 90}}  # the Grad-CAM grid is a JPEG


def log_evaluated_data(data: pd.DataFrame, model_uri: str, evaluated: str, tags: dict[str, str]) -> None:
    """What an evaluation run scored, where the MLflow UI shows it: parameters (the model, the part, the folder) and
    the images as a dataset input (context `evaluation`)."""
    folder = tags.get(EVAL_DATA_TAG, "")
    mlflow.log_params({"model_uri": model_uri, "evaluated": evaluated, "data_dir": folder})
    log_dataset(
        data[["image_id", "lesion_id", "dx"]].reset_index(drop=True),
        folder,
        f"{Path(folder).name}-{evaluated}",
        "evaluation",
    )


def log_evaluation(evaluation: Evaluation) -> None:
    """Log `evaluation` to the active run: its figures under `<prefix>_*` names (intervals, ECE and the decisions'
    figures included), the image count as a tag, every plot, the report, `metrics.json` and `predictions.csv`."""
    metrics, prefix = evaluation.metrics, evaluation.prefix
    mlflow.log_metrics(flat_metrics(metrics, prefix))  # the figures and the ECE
    mlflow.log_metrics(interval_metrics(metrics["ci95"], prefix))
    if "decisions" in metrics:
        mlflow.log_metrics(decision_metrics(metrics["decisions"], prefix))
    if "familiarity" in metrics:
        mlflow.log_metrics(familiarity_metrics(metrics["familiarity"], prefix))
    mlflow.set_tag(N_IMAGES_TAG, str(metrics["n_images"]))  # a count: a tag, not a model figure
    for artifact, figure in evaluation.figures.items():
        mlflow.log_figure(figure, artifact, save_kwargs=JPEG_QUALITY if artifact == GRAD_CAM_ARTIFACT else None)
    if not evaluation.slices.empty:
        mlflow.log_text(evaluation.slices.to_csv(index=False), SLICES_ARTIFACT)
    mlflow.log_text(evaluation.report, REPORT_ARTIFACT)
    mlflow.log_dict(metrics, METRICS_ARTIFACT)
    mlflow.log_text(evaluation.predictions.to_csv(index=False), PREDICTIONS_ARTIFACT)
