"""The evidence behind a promotion: each model's predictions for every image of the champion's test split, read from
the table its evaluation logged (`report/predictions.csv`) when it was scored on exactly those images, and the paired
lesion bootstrap of the two models' balanced-accuracy difference."""

from __future__ import annotations

from collections.abc import Callable

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from skinml.core.errors import DataError
from skinml.core.names import PREDICTIONS_ARTIFACT
from skinml.evaluation.metrics import paired_balanced_accuracy_difference
from skinml.tracking.runs import download_run_artifact


def logged_predictions(evaluation_run_id: str, images: pd.DataFrame) -> pd.Series | None:
    """The predicted class of each of `images` (in their order) from an evaluation run's predictions table, or None
    when that run scored other images or other labels."""
    table = pd.read_csv(
        download_run_artifact(evaluation_run_id, PREDICTIONS_ARTIFACT),
        dtype={"image_id": str, "dx": str, "predicted": str},
        keep_default_na=False,
    )
    if len(table) != len(images) or set(table["image_id"]) != set(images["image_id"]):
        return None
    table = table.set_index("image_id").loc[images["image_id"]]
    if (table["dx"].to_numpy() != images["dx"].to_numpy()).any():
        return None
    return table["predicted"].reset_index(drop=True)


def evaluations_of(name: str, version: ModelVersion) -> list[str]:
    """Ids of the finished evaluation runs of a registered version's model: under its own URI, or under the
    version's URI since the version exists (a registered model deleted and made again numbers its versions anew)."""
    found = []
    for uri, since in ((version.source, 0), (f"models:/{name}/{version.version}", version.creation_timestamp)):
        found += mlflow.search_runs(
            search_all_experiments=True,
            output_format="list",
            order_by=["start_time DESC"],
            filter_string=evaluations_filter(uri, since),
        )
    return [run.info.run_id for run in found]


def evaluations_filter(model_uri: str, since: int = 0) -> str:
    """MLflow's filter for the finished evaluation runs of a model URI, started at `since` (ms) or later."""
    return (
        f"tags.`skinml.stage` = 'evaluate' and attributes.status = 'FINISHED' and "
        f"tags.`skinml.model_uri` = '{model_uri}' and attributes.start_time >= {since}"
    )


def stored_predictions(name: str, version: ModelVersion, images: pd.DataFrame) -> tuple[pd.Series, str] | None:
    """The version's predictions for `images` from an evaluation already logged, and that run's id; None if none
    scored exactly these images."""
    for run_id in evaluations_of(name, version):
        predicted = logged_predictions(run_id, images)
        if predicted is not None:
            return predicted, run_id
    return None


def predictions_for(
    name: str, version: ModelVersion, images: pd.DataFrame, score: Callable[[str], str]
) -> tuple[pd.Series, str]:
    """The version's predictions for `images`: stored ones, else `score(model_uri)` (an evaluation on the
    champion's test split, returning its run id) run once. Returns them and the evaluation run they come from."""
    stored = stored_predictions(name, version, images)
    if stored is not None:
        return stored
    run_id = score(f"models:/{name}/{version.version}")
    predicted = logged_predictions(run_id, images)
    if predicted is None:
        raise DataError(f"evaluation run {run_id} of {name} v{version.version} did not score the champion's test split")
    return predicted, run_id


def compare(images: pd.DataFrame, champion: pd.Series, challenger: pd.Series) -> dict:
    """Both balanced accuracies, the challenger's gain and its 95% paired lesion-bootstrap interval."""
    champion_score, challenger_score, interval = paired_balanced_accuracy_difference(
        images["dx"].to_numpy(), champion.to_numpy(), challenger.to_numpy(), images["lesion_id"].to_numpy()
    )
    return {
        "champion_balanced_accuracy": champion_score,
        "challenger_balanced_accuracy": challenger_score,
        "difference": challenger_score - champion_score,
        "difference_ci95": interval,
        "n_images": len(images),
        "n_lesions": int(images["lesion_id"].nunique()),
    }
