"""Evaluation: metrics, report and plots of a logged model on a run's test split or any labelled folder."""

from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd

from skinml.batches import PredictionBatches
from skinml.config import DEFAULT_EXPERIMENT, AugmentConfig
from skinml.data.dataset import load_dataset
from skinml.data.loader import image_dataset
from skinml.data.split import lesions_crossing, manifest_digest
from skinml.data.training_set import model_labels, recorded_config
from skinml.decision_plots import coverage_curve, referral_curves
from skinml.decisions import decision_metrics, describe, p_positive, positives, score
from skinml.explain import feature_maps, fixed_sample, grad_cam
from skinml.feature_cache import FeatureCache
from skinml.features import extract_features
from skinml.labels import class_indices, model_classes
from skinml.manifests import run_manifest
from skinml.metrics import (
    classification_metrics,
    expected_calibration_error,
    flat_metrics,
    interval_metrics,
    lesion_bootstrap_intervals,
    report_text,
    slice_metrics,
)
from skinml.mlflow_names import (
    CONFUSION_MATRIX_ARTIFACT,
    DEFERRAL_ARTIFACT,
    EVAL_DATA_FORMAT_TAG,
    EVAL_DATA_TAG,
    EVAL_LEFT_OUT_TAG,
    EVAL_SPLIT_TAG,
    GRAD_CAM_ARTIFACT,
    LESIONS_CROSSING_SPLITS_TAG,
    MANIFEST_RUN_ID_TAG,
    MANIFEST_SHA256_TAG,
    METRICS_ARTIFACT,
    MODEL_URI_TAG,
    N_IMAGES_TAG,
    OPERATING_POINTS_ARTIFACT,
    PREDICTIONS_ARTIFACT,
    RELIABILITY_ARTIFACT,
    REPORT_ARTIFACT,
    ROC_CURVES_ARTIFACT,
    SLICES_ARTIFACT,
    SLICES_PLOT_ARTIFACT,
    SPLIT_TAG_PREFIX,
    TEST,
    metric_name,
)
from skinml.model import PREDICT_BATCH_SIZE, split_classifier
from skinml.model_store import load_keras_model, model_decisions
from skinml.plots import (
    confusion_matrices,
    grad_cam_grid,
    reliability_diagram,
    roc_curves,
    slice_chart,
)
from skinml.tracking import dump_json, log_dataset, stage_run


def predict_paths(classifier, paths: list[str], cache: FeatureCache | None = None) -> np.ndarray:
    """Class probabilities for image files; the frozen extractor's features come from the feature cache, read a
    batch at a time."""
    extractor, head, temperature = split_classifier(classifier)
    features = extract_features(extractor, paths, [0], AugmentConfig(), seed=0, cache=cache)
    probs = np.asarray(head.predict(PredictionBatches(features, PREDICT_BATCH_SIZE), verbose=0))
    return probs if temperature is None else keras.ops.convert_to_numpy(temperature(probs))


def explanations(classifier, data: pd.DataFrame, probs: np.ndarray, classes: tuple[str, ...], per_class: int = 3,
                 cache: FeatureCache | None = None):
    """Grad-CAM grid for a fixed sample of `per_class` images per class (rows: classes)."""
    data = data.reset_index(drop=True)
    sample = fixed_sample(data, per_class, classes)
    rows = sample.index.to_numpy()
    paths = sample["path"].tolist()
    images = np.concatenate([batch.numpy() for batch in image_dataset(paths, int(classifier.input_shape[1]), 64)])
    truth = class_indices(sample["dx"], classes)
    cams = grad_cam(classifier, feature_maps(classifier, paths, cache), truth)
    titles = [f"{classes[t]} -> {classes[p.argmax()]} ({p.max():.2f})" for t, p in zip(truth, probs[rows])]
    return grad_cam_grid(images, cams, titles, columns=per_class)


def left_out_text(left_out: dict[str, int]) -> str:
    """The report's lines on the images not scored, by label."""
    if not left_out:
        return ""
    lines = [f"  {label}: {count} image(s)" for label, count in sorted(left_out.items())]
    return "\nLeft out (dropped by the label map, or not a class of the model):\n" + "\n".join(lines) + "\n"


def training_run_id(model_uri: str) -> str:
    """The run that trained (logged) a model."""
    run_id = mlflow.models.get_model_info(model_uri).run_id
    if not run_id:
        raise ValueError(f"{model_uri} records no training run")
    return run_id


def evaluation_name(model_uri: str, part: str) -> str:
    """'evaluate test baseline lr=0.0003': the part evaluated and the recipe, from the name of the training run."""
    try:
        trained = mlflow.get_run(training_run_id(model_uri)).info.run_name or ""
    except (ValueError, mlflow.exceptions.MlflowException):
        trained = ""
    return f"evaluate {part} {trained.removeprefix('train ')}".strip()


def external_set(model_uri: str, data_dir: str | Path, data_format: str, label_map: dict[str, str] | None
                 ) -> tuple[pd.DataFrame, dict[str, str], dict[str, int]]:
    """Every image of a labelled folder in any layout, its labels mapped (by `label_map`, else by the one the model
    was trained with), and the images left out per label: dropped by the map or of a class the model lacks."""
    if label_map is None:
        label_map = dict(recorded_config(training_run_id(model_uri)).label_map)
    frame = load_dataset(data_dir, data_format=data_format, label_map=label_map)
    frame, left_out = model_labels(frame, model_classes(model_uri), label_map)
    left_out.update({f"{label} (dropped by the label map)": count
                     for label, count in frame.attrs.get("label_counts_dropped", {}).items() if count})
    tags = {EVAL_DATA_TAG: str(Path(data_dir).resolve()), EVAL_SPLIT_TAG: "whole folder",
            EVAL_DATA_FORMAT_TAG: str(frame.attrs.get("data_format", data_format))}
    if left_out:
        tags[EVAL_LEFT_OUT_TAG] = ", ".join(f"{label}: {count}" for label, count in sorted(left_out.items()))
    return frame, tags, left_out


def log_decisions(probs: np.ndarray, y_true: np.ndarray, classes: tuple[str, ...], decisions: dict,
                  lesions: np.ndarray, prefix: str) -> dict:
    """Score the model's decisions (chosen on validation) on this set: metrics, the operating points' plot and the
    deferral's coverage-accuracy curve logged; returns the figures (skinml.decisions.score)."""
    scored = score(probs, y_true, classes, decisions, lesions)
    mlflow.log_metrics(decision_metrics(scored, prefix))
    if scored["operating_points"]:
        group = scored["positive_classes"]
        mlflow.log_figure(referral_curves(p_positive(probs, classes, group), positives(y_true, classes, group),
                                          scored), OPERATING_POINTS_ARTIFACT)
    mlflow.log_figure(coverage_curve(probs, y_true, scored["deferral"]), DEFERRAL_ARTIFACT)
    return scored


def evaluation_set(model_uri: str, split: str, manifest_run_id: str | None = None
                   ) -> tuple[pd.DataFrame, dict[str, str]]:
    """The `split` part of the manifest logged by the run that trained the model (or by `manifest_run_id`, to
    compare models on one split), read from that run's data folder with its layout, and tags describing it."""
    run_id = manifest_run_id or training_run_id(model_uri)
    manifest = run_manifest(run_id)
    run = mlflow.get_run(run_id)
    train_data_dir = run.data.params["data_dir"]
    frame = load_dataset(train_data_dir, data_format=recorded_config(run_id).data_format)
    metadata = [c for c in frame.columns if c not in ("lesion_id", "dx")]
    part = manifest[manifest["split"] == split].merge(frame[metadata], on="image_id")
    tags = {EVAL_DATA_TAG: train_data_dir, EVAL_SPLIT_TAG: split,
            MANIFEST_SHA256_TAG: manifest_digest(manifest), MANIFEST_RUN_ID_TAG: run_id,
            # as the run that logged the split counted (`unknown` for data that names no group)
            LESIONS_CROSSING_SPLITS_TAG: run.data.tags.get(SPLIT_TAG_PREFIX + "lesions_crossing_splits",
                                                           str(lesions_crossing(manifest)))}
    return part, tags


def log_evaluated_data(data: pd.DataFrame, model_uri: str, evaluated: str, tags: dict[str, str]) -> None:
    """What an evaluation run scored, where the MLflow UI shows it: parameters (the model, the part, the folder) and
    the images as a dataset input (context `evaluation`)."""
    folder = tags.get(EVAL_DATA_TAG, "")
    mlflow.log_params({"model_uri": model_uri, "evaluated": evaluated, "data_dir": folder})
    log_dataset(data[["image_id", "lesion_id", "dx"]].reset_index(drop=True), folder,
                f"{Path(folder).name}-{evaluated}", "evaluation")


def evaluate(model_uri: str, data_dir: str | Path | None = None, split: str = "test",
             experiment: str = DEFAULT_EXPERIMENT, parent_run_id: str | None = None,
             cache: FeatureCache | None = None, output: str | Path | None = None,
             manifest_run_id: str | None = None, data_format: str = "auto",
             label_map: dict[str, str] | None = None) -> dict:
    """Evaluate a logged skinml model, log metrics/plots/report to MLflow, return the metrics dict.

    Metric names start with the part evaluated: `test_` (the run's test split, or an external folder), `val_` or
    `train_`, so that a validation figure never passes for a test one in the MLflow UI. An external folder
    (`data_dir`, any layout) has its labels mapped by `label_map` (default: the model's own training map); images
    the map drops or whose class the model lacks are counted and named in the report, not scored.
    """
    prefix = TEST if data_dir is not None else split
    if data_dir is None and (data_format != "auto" or label_map):
        raise ValueError("--data-format and --label-map apply to an external folder: give it with --data-dir")
    classes = model_classes(model_uri)
    left_out: dict[str, int] = {}
    if data_dir is not None:  # the data is read before the run starts: bad data leaves no run behind
        data, tags, left_out = external_set(model_uri, data_dir, data_format, label_map)
    else:
        data, tags = evaluation_set(model_uri, split, manifest_run_id)
    if data.empty:
        where = data_dir if data_dir is not None else f"the {split} split of {model_uri}'s run"
        raise ValueError(f"nothing to evaluate: {where} has no image of the model's classes {list(classes)}")
    with stage_run("evaluate", experiment, parent_run_id, tags={MODEL_URI_TAG: model_uri},
                   name=evaluation_name(model_uri, prefix if data_dir is None else "external")) as run:
        mlflow.set_tags(tags)
        log_evaluated_data(data, model_uri, prefix if data_dir is None else "external", tags)
        classifier = load_keras_model(model_uri)
        probs = predict_paths(classifier, data["path"].tolist(), cache)
        y_true = class_indices(data["dx"], classes)
        metrics = classification_metrics(y_true, probs, classes)
        if left_out:
            metrics["left_out"] = left_out
        mlflow.log_metrics(flat_metrics(metrics, prefix))
        mlflow.set_tag(N_IMAGES_TAG, str(metrics["n_images"]))  # a count: a tag, not a model figure
        metrics["ci95"] = lesion_bootstrap_intervals(y_true, probs, data["lesion_id"].to_numpy(), classes)
        mlflow.log_metrics(interval_metrics(metrics["ci95"], prefix))
        mlflow.log_figure(confusion_matrices(y_true, probs.argmax(axis=1), classes), CONFUSION_MATRIX_ARTIFACT)
        mlflow.log_figure(roc_curves(y_true, probs, {k: v["auc"] for k, v in metrics["per_class"].items()}),
                          ROC_CURVES_ARTIFACT)
        ece, bins = expected_calibration_error(y_true, probs)
        metrics["ece"] = ece
        mlflow.log_metric(metric_name(prefix, "ece"), ece)
        mlflow.log_figure(reliability_diagram(bins, ece), RELIABILITY_ARTIFACT)
        slices = slice_metrics(data, y_true, probs)
        if not slices.empty:
            mlflow.log_text(slices.to_csv(index=False), SLICES_ARTIFACT)
            mlflow.log_figure(slice_chart(slices), SLICES_PLOT_ARTIFACT)
        mlflow.log_figure(explanations(classifier, data, probs, classes, cache=cache), GRAD_CAM_ARTIFACT,
                          save_kwargs={"pil_kwargs": {"quality": 90}})
        decisions = model_decisions(model_uri)
        if decisions:
            metrics["decisions"] = log_decisions(probs, y_true, classes, decisions, data["lesion_id"].to_numpy(),
                                                 prefix)
        mlflow.log_text(report_text(y_true, probs, classes) + left_out_text(left_out)
                        + (f"\nDecisions: {describe(metrics['decisions'])}.\n" if decisions else ""),
                        REPORT_ARTIFACT)
        mlflow.log_dict(metrics, METRICS_ARTIFACT)
        predictions = pd.DataFrame(probs, columns=list(classes)).assign(
            image_id=data["image_id"].to_numpy(), dx=data["dx"].to_numpy(),
            predicted=[classes[k] for k in probs.argmax(axis=1)])
        mlflow.log_text(predictions.to_csv(index=False), PREDICTIONS_ARTIFACT)
        result = {**metrics, "run_id": run.info.run_id, "model_uri": model_uri, **{k.split(".", 1)[1]: v
                                                                                 for k, v in tags.items()}}
        dump_json(result, output)
        return result
