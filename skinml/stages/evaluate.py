"""The evaluate stage: a logged model scored on its run's test split (or another part, or any labelled folder),
computed first (skinml.evaluation.scoring) and logged second (skinml.tracking.evaluations)."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pandas as pd

from skinml.audit.leaks import leak_metrics, leaked_images
from skinml.core.errors import DataError, OptionError, UserError
from skinml.core.names import (
    EVAL_DATA_FORMAT_TAG,
    EVAL_DATA_TAG,
    EVAL_LEFT_OUT_TAG,
    EVAL_SPLIT_TAG,
    LESIONS_CROSSING_SPLITS_TAG,
    MANIFEST_RUN_ID_TAG,
    MANIFEST_SHA256_TAG,
    MODEL_URI_TAG,
    SPLIT_TAG_PREFIX,
    TEST,
)
from skinml.core.run_context import RunContext
from skinml.data.dataset import load_dataset
from skinml.data.split import lesions_crossing, manifest_digest
from skinml.data.training_set import model_labels
from skinml.evaluation.scoring import evaluate_classifier
from skinml.features.cache import FeatureCache
from skinml.tracking.audits import log_leaks
from skinml.tracking.evaluations import log_evaluated_data, log_evaluation
from skinml.tracking.logged_model import LoggedModel, training_recipe
from skinml.tracking.model_store import load_classifier
from skinml.tracking.runs import dump_json, stage_run
from skinml.tracking.splits import run_manifest

log = logging.getLogger("skinml.evaluate")


def evaluation_name(model: LoggedModel, part: str) -> str:
    """'evaluate test baseline lr=0.0003': the part evaluated and the recipe, from the name of the training run."""
    try:
        trained = mlflow.get_run(model.training_run_id).info.run_name or ""
    except (ValueError, mlflow.exceptions.MlflowException):
        trained = ""
    return f"evaluate {part} {trained.removeprefix('train ')}".strip()


def external_set(
    model: LoggedModel, data_dir: str | Path, data_format: str, label_map: dict[str, str] | None
) -> tuple[pd.DataFrame, dict[str, str], dict[str, int]]:
    """Every image of a labelled folder in any layout, its labels mapped (by `label_map`, else by the one the model
    was trained with), and the images left out per label: dropped by the map or of a class the model lacks."""
    if label_map is None:
        label_map = dict(model.recipe.label_map)
    frame = load_dataset(data_dir, data_format=data_format, label_map=label_map)
    frame, left_out = model_labels(frame, model.classes, label_map)
    left_out.update(
        {
            f"{label} (dropped by the label map)": count
            for label, count in frame.attrs.get("label_counts_dropped", {}).items()
            if count
        }
    )
    tags = {
        EVAL_DATA_TAG: str(Path(data_dir).resolve()),
        EVAL_SPLIT_TAG: "whole folder",
        EVAL_DATA_FORMAT_TAG: str(frame.attrs.get("data_format", data_format)),
    }
    if left_out:
        tags[EVAL_LEFT_OUT_TAG] = ", ".join(f"{label}: {count}" for label, count in sorted(left_out.items()))
    return frame, tags, left_out


def training_leaks(model: LoggedModel, data: pd.DataFrame) -> pd.DataFrame | None:
    """The images of `data` that duplicate one the model trained or chose its thresholds on (its manifest's train
    and val images, read from its training folder); None, said on the terminal, when that folder cannot be read."""
    folder = mlflow.get_run(model.training_run_id).data.params.get("data_dir")
    try:
        if not folder or not Path(folder).is_dir():
            raise DataError(f"the model's training folder {folder} is not here")
        manifest = run_manifest(model.training_run_id)
        seen = manifest.loc[manifest["split"] != "test", "image_id"]
        frame = load_dataset(folder, check_images=False, data_format=model.recipe.data_format)
        return leaked_images(data, frame[frame["image_id"].isin(seen)])
    except UserError as exc:  # a folder gone, changed or holding an unreadable image
        log.warning("no leak check: %s", exc)
        return None


def evaluation_set(
    model: LoggedModel, split: str, manifest_run_id: str | None = None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The `split` part of the manifest logged by the run that trained the model (or by `manifest_run_id`, to
    compare models on one split), read from that run's data folder with its layout, and tags describing it."""
    run_id = manifest_run_id or model.training_run_id
    manifest = run_manifest(run_id)
    run = mlflow.get_run(run_id)
    train_data_dir = run.data.params["data_dir"]
    recipe = training_recipe(run_id) if manifest_run_id else model.recipe
    frame = load_dataset(train_data_dir, data_format=recipe.data_format)
    metadata = [c for c in frame.columns if c not in ("lesion_id", "dx")]
    part = manifest[manifest["split"] == split].merge(frame[metadata], on="image_id")
    tags = {
        EVAL_DATA_TAG: train_data_dir,
        EVAL_SPLIT_TAG: split,
        MANIFEST_SHA256_TAG: manifest_digest(manifest),
        MANIFEST_RUN_ID_TAG: run_id,
        # as the run that logged the split counted (`unknown` for data that names no group)
        LESIONS_CROSSING_SPLITS_TAG: run.data.tags.get(
            SPLIT_TAG_PREFIX + "lesions_crossing_splits", str(lesions_crossing(manifest))
        ),
    }
    return part, tags


def evaluate(
    model_uri: str,
    data_dir: str | Path | None = None,
    split: str = "test",
    *,
    context: RunContext = RunContext(),
    cache: FeatureCache | None = None,
    output: str | Path | None = None,
    manifest_run_id: str | None = None,
    data_format: str = "auto",
    label_map: dict[str, str] | None = None,
) -> dict:
    """Evaluate a logged skinml model, log metrics/plots/report to MLflow, return the metrics dict.

    Metric names start with the part evaluated: `test_` (the run's test split, or an external folder), `val_` or
    `train_`, so that a validation figure never passes for a test one in the MLflow UI. An external folder
    (`data_dir`, any layout) has its labels mapped by `label_map` (default: the model's own training map); images
    the map drops or whose class the model lacks are counted and named in the report, not scored; its images that
    duplicate one the model trained on are named, and the figures without them logged (skinml.audit.leaks).
    """
    prefix = TEST if data_dir is not None else split
    if data_dir is None and (data_format != "auto" or label_map):
        raise OptionError("--data-format and --label-map apply to an external folder: give it with --data-dir")
    model = LoggedModel.resolve(model_uri)
    left_out: dict[str, int] = {}
    if data_dir is not None:  # the data is read before the run starts: bad data leaves no run behind
        data, tags, left_out = external_set(model, data_dir, data_format, label_map)
    else:
        data, tags = evaluation_set(model, split, manifest_run_id)
    if data.empty:
        where = data_dir if data_dir is not None else f"the {split} split of {model_uri}'s run"
        raise DataError(f"nothing to evaluate: {where} has no image of the model's classes {list(model.classes)}")
    leaks = training_leaks(model, data) if data_dir is not None else None
    evaluated = prefix if data_dir is None else "external"
    with stage_run("evaluate", context, tags={MODEL_URI_TAG: model_uri}, name=evaluation_name(model, evaluated)) as run:
        mlflow.set_tags(tags)
        log_evaluated_data(data, model_uri, evaluated, tags)
        classifier, familiarity = load_classifier(model_uri)
        evaluation = evaluate_classifier(
            classifier,
            data,
            model.classes,
            prefix=prefix,
            decisions=model.decisions,
            left_out=left_out,
            familiarity=familiarity,
            cache=cache,
        )
        log_evaluation(evaluation)
        leak_figures = leak_metrics(evaluation.predictions, model.classes, leaks, prefix) if leaks is not None else {}
        if leaks is not None:
            log_leaks(leaks, leak_figures)
        result = {
            **evaluation.metrics,
            **({"leaked_images": leaks["image_id"].tolist(), **leak_figures} if leaks is not None else {}),
            "run_id": run.info.run_id,
            "model_uri": model_uri,
            **{k.split(".", 1)[1]: v for k, v in tags.items()},
        }
        dump_json(result, output)
        return result
