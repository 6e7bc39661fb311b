"""Classification metrics for any label set (scikit-learn); classes are named by the model's own class names."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    precision_recall_fscore_support,
    roc_auc_score,
)

from skinml.core.names import HEADLINE_RECALL, HEADLINE_TEST, HEADLINE_VAL, TEST, interval_name, metric_name


def per_class_auc(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """One-vs-rest ROC AUC per class; NaN for a class absent from (or the only class of) y_true."""
    aucs = {}
    for k, name in enumerate(classes):
        positives = y_true == k
        aucs[name] = float(roc_auc_score(positives, probs[:, k])) if 0 < positives.sum() < len(y_true) else np.nan
    return aucs


def quiet(function):
    """Silence scikit-learn's "y_pred contains classes not in y_true", expected on small sets and slices."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return function(*args, **kwargs)

    return wrapper


@quiet
def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """accuracy, balanced_accuracy, macro/weighted precision/recall/F1, macro_auc and per_class metrics (keyed by
    the names in `classes`, the columns of `probs`)."""
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    aucs = per_class_auc(y_true, probs, classes)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    result = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_auc": float(mean_of_known(list(aucs.values()))),
        "n_images": int(len(y_true)),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        result.update({f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)})
    result["per_class"] = {
        name: {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "auc": aucs[name],
            "support": int(support[k]),
        }
        for k, name in enumerate(classes)
    }
    return result


def report_text(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> str:
    """scikit-learn's text classification report."""
    return classification_report(
        y_true,
        probs.argmax(axis=1),
        labels=list(range(len(classes))),
        target_names=list(classes),
        digits=3,
        zero_division=0,
    )


def flat_metrics(metrics: dict, prefix: str) -> dict[str, float]:
    """MLflow metric names: `<prefix>_accuracy`, ..., and per class `<prefix>_recall/<class>`, ..., so that MLflow's
    chart view groups each per-class figure under one prefix (NaNs left out)."""
    flat = {metric_name(prefix, k): v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "n_images"}
    for name, values in metrics.get("per_class", {}).items():
        flat.update({metric_name(prefix, k, name): v for k, v in values.items() if k != "support"})
    return {k: float(v) for k, v in flat.items() if v == v}


def headline_metrics(test: dict, last_epoch: dict[str, float]) -> dict[str, float]:
    """What a parent run shows first (skinml.core.names): the test figures `test_balanced_accuracy`,
    `test_macro_auc`, `test_ece`, `test_macro_f1` (the compare view's), per-class test recall (`test_recall/<class>`)
    and the last epoch's `val_balanced_accuracy` and `val_macro_auc`: each under the name its own run gives it."""
    figures = {
        metric_name(TEST, figure): value for figure, value in test.items() if metric_name(TEST, figure) in HEADLINE_TEST
    }
    figures.update(
        {
            metric_name(TEST, HEADLINE_RECALL, name): values[HEADLINE_RECALL]
            for name, values in test["per_class"].items()
        }
    )
    figures.update({name: last_epoch[name] for name in HEADLINE_VAL if name in last_epoch})
    return {k: float(v) for k, v in figures.items() if v == v}


def rank_auc(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC of every class at once (Mann-Whitney U from average ranks; equal to roc_auc_score, NaN
    where a class is absent or alone). One call per bootstrap resample instead of seven roc_auc_score calls."""
    ranks = rankdata(probs, axis=0)
    positives = y_true[:, None] == np.arange(probs.shape[1])
    n_pos = positives.sum(axis=0)
    n_neg = len(y_true) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * positives).sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def lesion_resample_counts(lesions, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(n_resamples, images): how often each image is in each bootstrap resample that draws whole lesions with
    replacement (an image counts as often as its lesion was drawn). Weighting by a row scores a resample without
    building it."""
    lesion_index = np.unique(np.asarray(lesions), return_inverse=True)[1].ravel()
    n_lesions = int(lesion_index.max()) + 1
    rng = np.random.default_rng(seed)
    drawn = np.stack(
        [np.bincount(rng.integers(0, n_lesions, n_lesions), minlength=n_lesions) for _ in range(n_resamples)]
    )
    return drawn[:, lesion_index]


def weighted_recalls(weights: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(resamples, classes) recall of each class in each weighted resample; NaN for a class a resample lacks."""
    one_hot = np.eye(n_classes)[y_true]
    counts = weights @ one_hot
    correct = weights @ (one_hot * (y_pred == y_true)[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, correct / counts, np.nan)


def mean_of_known(values, axis: int | None = None):
    """np.nanmean without its warning: the mean of the values that are numbers, NaN where none is (a figure that no
    class or resample could compute)."""
    values = np.asarray(values, dtype=float)
    known = ~np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(known, values, 0.0).sum(axis=axis) / known.sum(axis=axis)


def percentile_interval(draws: np.ndarray, confidence: float = 0.95) -> list[float]:
    """The percentile interval of bootstrap draws (NaN draws left out; NaN when every draw is)."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[~np.isnan(draws)]
    if not draws.size:
        return [float("nan"), float("nan")]
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))]


def lesion_bootstrap_intervals(
    y_true: np.ndarray,
    probs: np.ndarray,
    lesions,
    classes: Sequence[str] = (),
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile intervals of balanced accuracy, macro AUC and (with `classes`) each class's recall
    (`recall/<class>`) over bootstrap resamples of whole lesions.

    Images of one lesion are not independent draws, so a resample draws lesions with replacement and takes all of
    each drawn lesion's images (scipy.stats.bootstrap resamples single observations only). Balanced accuracy is
    scikit-learn's: the mean recall over the classes the resample has.
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    weights = lesion_resample_counts(lesions, n_resamples, seed)
    recalls = weighted_recalls(weights, y_true, probs.argmax(axis=1), probs.shape[1])
    images = np.arange(len(y_true))
    auc = [mean_of_known(rank_auc(y_true[rows], probs[rows])) for rows in (np.repeat(images, w) for w in weights)]
    intervals = {
        "balanced_accuracy": percentile_interval(mean_of_known(recalls, axis=1), confidence),
        "macro_auc": percentile_interval(np.asarray(auc), confidence),
    }
    for k, name in enumerate(classes):
        intervals[f"recall/{name}"] = percentile_interval(recalls[:, k], confidence)
    return intervals


def interval_metrics(intervals: dict[str, list[float]], prefix: str) -> dict[str, float]:
    """MLflow names of the intervals: `<prefix>_balanced_accuracy_ci95_low`, ..., `<prefix>_recall_ci95_low/<class>`."""
    named = {}
    for name, bounds in intervals.items():
        figure, _, label = name.partition("/")
        for end, bound in zip(("low", "high"), bounds):
            named[interval_name(prefix, figure, end, label)] = bound
    return {k: v for k, v in named.items() if v == v}


def paired_balanced_accuracy_difference(
    truth: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    lesions,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, list[float]]:
    """Balanced accuracy of the predictions `first` and `second` of the same images, and the percentile interval of
    `second`'s minus `first`'s over bootstrap resamples of whole lesions, both scored on each resample (paired).

    A resample draws lesions with replacement; an image counts as often as its lesion was drawn. Labels are any
    hashable class names; balanced accuracy is the mean recall over the classes present, as scikit-learn's.
    """
    classes, codes = np.unique(np.asarray(truth), return_inverse=True)
    lesion_index = np.unique(np.asarray(lesions), return_inverse=True)[1].ravel()
    n_lesions = lesion_index.max() + 1
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_lesions, (n_resamples, n_lesions)) + n_lesions * np.arange(n_resamples)[:, None]
    draws = np.bincount(drawn.ravel(), minlength=n_resamples * n_lesions).reshape(n_resamples, n_lesions)
    weights = np.vstack([np.ones(len(codes)), draws[:, lesion_index]])  # row 0: the sample itself

    def balanced_accuracy(predicted: np.ndarray) -> np.ndarray:
        predicted = np.asarray(predicted)
        known = np.isin(predicted, classes)  # a label truth never has is wrong for every image
        predicted_codes = np.where(known, np.searchsorted(classes, np.where(known, predicted, classes[0])), -1)
        return mean_of_known(weighted_recalls(weights, codes.ravel(), predicted_codes, len(classes)), axis=1)

    first_scores, second_scores = balanced_accuracy(first), balanced_accuracy(second)
    difference = second_scores[1:] - first_scores[1:]
    tail = (1 - confidence) / 2 * 100
    return (
        float(first_scores[0]),
        float(second_scores[0]),
        [float(np.percentile(difference, tail)), float(np.percentile(difference, 100 - tail))],
    )


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> tuple[float, dict]:
    """ECE of the top-class confidence over equal-width bins, and the per-bin table for a reliability diagram."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    table = {
        "bin_lower": edges[:-1].tolist(),
        "bin_upper": edges[1:].tolist(),
        "count": [],
        "confidence": [],
        "accuracy": [],
    }
    ece = 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        table["count"].append(n)
        table["confidence"].append(float(confidence[mask].mean()) if n else float("nan"))
        table["accuracy"].append(float(correct[mask].mean()) if n else float("nan"))
        if n:
            ece += n / len(y_true) * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece), table


AGE_BANDS = [0, 30, 45, 60, 75, 200]
SLICE_COLUMNS = ("sex", "age_band", "localization", "skin_type", "dx_type", "dataset")
SMALL_SLICE = 30


@quiet
def slice_metrics(frame, y_true: np.ndarray, probs: np.ndarray):
    """Accuracy and balanced accuracy per value of each metadata column present (sex, age band, localization,
    dx_type, source dataset); slices with fewer than SMALL_SLICE images are flagged `small`."""
    frame = frame.reset_index(drop=True)
    if "age" in frame.columns:
        ages = pd.to_numeric(frame["age"], errors="coerce")
        labels = [f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+" for lo, hi in zip(AGE_BANDS, AGE_BANDS[1:])]
        frame = frame.assign(
            age_band=pd.cut(ages, AGE_BANDS, right=False, labels=labels).astype(str).replace("nan", "unknown")
        )
    y_pred = probs.argmax(axis=1)
    rows = []
    for column in SLICE_COLUMNS:
        if column not in frame.columns:
            continue
        for value, index in frame.groupby(frame[column].fillna("unknown").astype(str)).groups.items():
            index = np.asarray(index)
            rows.append(
                {
                    "column": column,
                    "value": value,
                    "n": len(index),
                    "accuracy": float(accuracy_score(y_true[index], y_pred[index])),
                    "balanced_accuracy": float(balanced_accuracy_score(y_true[index], y_pred[index])),
                    "small": len(index) < SMALL_SLICE,
                }
            )
    return pd.DataFrame(rows, columns=["column", "value", "n", "accuracy", "balanced_accuracy", "small"])
