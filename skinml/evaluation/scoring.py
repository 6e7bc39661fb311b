"""An evaluation computed without a run: a classifier's figures, report, predictions and plots on a set of labelled
images. skinml.tracking.evaluations logs it; skinml.stages.evaluate picks the images and the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import keras
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from skinml.core.labels import class_indices
from skinml.core.names import (
    CONFUSION_MATRIX_ARTIFACT,
    DEFERRAL_ARTIFACT,
    GRAD_CAM_ARTIFACT,
    OPERATING_POINTS_ARTIFACT,
    RELIABILITY_ARTIFACT,
    ROC_CURVES_ARTIFACT,
    SLICES_PLOT_ARTIFACT,
)
from skinml.core.recipe import AugmentConfig
from skinml.data.loader import image_dataset
from skinml.evaluation.decision_plots import coverage_curve, referral_curves
from skinml.evaluation.decisions import decisions_text, p_positive, positives, score
from skinml.evaluation.explain import feature_maps, fixed_sample, grad_cam
from skinml.evaluation.familiarity import Familiarity, familiarity_sentence, split_figures
from skinml.evaluation.metrics import (
    classification_metrics,
    expected_calibration_error,
    lesion_bootstrap_intervals,
    report_text,
    slice_metrics,
)
from skinml.evaluation.plots import confusion_matrices, grad_cam_grid, reliability_diagram, roc_curves, slice_chart
from skinml.features.batches import PredictionBatches
from skinml.features.cache import FeatureCache
from skinml.features.extraction import extract_features
from skinml.model.network import PREDICT_BATCH_SIZE, head_with_representation, split_classifier


@dataclass
class Evaluation:
    """A classifier's figures on a set of images. `metrics` is what the run's `metrics.json` holds: the figures
    (classification_metrics), `ci95` (lesion bootstrap), `ece`, the scored `decisions` and the images `left_out`."""

    prefix: str  # what the metric names start with: `test` (a test split or an external folder), `val`, `train`
    classes: tuple[str, ...]
    metrics: dict
    report: str
    predictions: pd.DataFrame  # one row per image: a probability per class, image_id, dx, predicted
    slices: pd.DataFrame  # the figures per value of each metadata column (empty when the data has none)
    figures: dict[str, Figure] = field(default_factory=dict)  # artifact file -> plot


def predict_paths(
    classifier: keras.Model, paths: list[str], cache: FeatureCache | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities for image files and the classifier's representation of each (skinml.model.network); the
    frozen extractor's features come from the feature cache, read a batch at a time."""
    extractor, head, temperature = split_classifier(classifier)
    features = extract_features(extractor, paths, [0], AugmentConfig(), seed=0, cache=cache)
    probs, representation = head_with_representation(head).predict(
        PredictionBatches(features, PREDICT_BATCH_SIZE), verbose=0
    )
    probs = np.asarray(probs) if temperature is None else keras.ops.convert_to_numpy(temperature(probs))
    return probs, np.asarray(representation)


def explanations(
    classifier: keras.Model,
    data: pd.DataFrame,
    probs: np.ndarray,
    classes: tuple[str, ...],
    *,
    per_class: int = 3,
    cache: FeatureCache | None = None,
) -> Figure:
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


def decision_figures(
    probs: np.ndarray, y_true: np.ndarray, classes: tuple[str, ...], decisions: dict, lesions: np.ndarray
) -> tuple[dict, dict[str, Figure]]:
    """The model's decisions (chosen on validation) scored on this set (skinml.evaluation.decisions.score), with
    the operating points' plot and the deferral's coverage-accuracy curve."""
    scored = score(probs, y_true, classes, decisions, lesions)
    figures = {}
    if scored["operating_points"]:
        group = scored["positive_classes"]
        figures[OPERATING_POINTS_ARTIFACT] = referral_curves(
            p_positive(probs, classes, group), positives(y_true, classes, group), scored
        )
    figures[DEFERRAL_ARTIFACT] = coverage_curve(probs, y_true, scored["deferral"])
    return scored, figures


def evaluate_classifier(
    classifier: keras.Model,
    data: pd.DataFrame,
    classes: tuple[str, ...],
    *,
    prefix: str,
    decisions: dict | None = None,
    left_out: dict[str, int] | None = None,
    familiarity: Familiarity | None = None,
    cache: FeatureCache | None = None,
) -> Evaluation:
    """The evaluation of `classifier` on `data` (columns path, dx, lesion_id, image_id and any metadata): figures
    with lesion-bootstrap intervals, calibration, slices, Grad-CAM, the decisions' figures when it ships any, and
    with its familiarity the share of images flagged unfamiliar and the figures without them."""
    probs, representation = predict_paths(classifier, data["path"].tolist(), cache)
    y_true = class_indices(data["dx"], classes)
    lesions = data["lesion_id"].to_numpy()
    metrics = classification_metrics(y_true, probs, classes)
    if left_out:
        metrics["left_out"] = left_out
    metrics["ci95"] = lesion_bootstrap_intervals(y_true, probs, lesions, classes)
    ece, bins = expected_calibration_error(y_true, probs)
    metrics["ece"] = ece
    slices = slice_metrics(data, y_true, probs)
    figures = {
        CONFUSION_MATRIX_ARTIFACT: confusion_matrices(y_true, probs.argmax(axis=1), classes),
        ROC_CURVES_ARTIFACT: roc_curves(y_true, probs, {k: v["auc"] for k, v in metrics["per_class"].items()}),
        RELIABILITY_ARTIFACT: reliability_diagram(bins, ece),
    }
    if not slices.empty:
        figures[SLICES_PLOT_ARTIFACT] = slice_chart(slices)
    figures[GRAD_CAM_ARTIFACT] = explanations(classifier, data, probs, classes, cache=cache)
    report = report_text(y_true, probs, classes) + left_out_text(left_out or {})
    if decisions:
        metrics["decisions"], decision_plots = decision_figures(probs, y_true, classes, decisions, lesions)
        figures.update(decision_plots)
        report += f"\nDecisions: {decisions_text(metrics['decisions'])}.\n"
    predictions = pd.DataFrame(probs, columns=list(classes)).assign(
        image_id=data["image_id"].to_numpy(),
        dx=data["dx"].to_numpy(),
        predicted=[classes[k] for k in probs.argmax(axis=1)],
    )
    if familiarity is not None:
        distances = familiarity.distances(representation)
        unfamiliar = familiarity.unfamiliar(distances)
        metrics["familiarity"] = split_figures(
            partial(classification_metrics, classes=classes), y_true, probs, unfamiliar
        )
        predictions = predictions.assign(familiarity_distance=distances, unfamiliar=unfamiliar)
        report += f"\nFamiliarity: {familiarity_sentence(metrics['familiarity'])}.\n"
    return Evaluation(
        prefix=prefix,
        classes=classes,
        metrics=metrics,
        report=report,
        predictions=predictions,
        slices=slices,
        figures=figures,
    )
