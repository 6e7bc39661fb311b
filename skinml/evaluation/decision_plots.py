"""Plots of the decisions (skinml.evaluation.decisions) on a labelled set: the positive-against-rest ROC with the
operating points, sensitivity and specificity against the threshold, and the coverage-accuracy curve of deferral."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from skinml.evaluation.decisions import kept_balanced_accuracy


def referral_curves(scores: np.ndarray, is_positive: np.ndarray, scored: dict) -> Figure:
    """Left: the ROC of P(positive) against the rest, each operating point marked; right: sensitivity and
    specificity against the threshold, each chosen threshold drawn."""
    fig = Figure(figsize=(12, 5))
    roc, sweep = fig.subplots(1, 2)
    fpr, tpr, _ = roc_curve(is_positive, scores)
    auc = roc_auc_score(is_positive, scores)
    group = "+".join(scored["positive_classes"])
    roc.plot(fpr, tpr, label=f"P({group}) AUC={auc:.3f}")
    roc.plot([0, 1], [0, 1], "k--", lw=0.8)
    thresholds = np.linspace(0, 1, 201)
    sensitivity = [(scores[is_positive] >= t).mean() for t in thresholds]
    specificity = [(scores[~is_positive] < t).mean() for t in thresholds]
    sweep.plot(thresholds, sensitivity, label="sensitivity")
    sweep.plot(thresholds, specificity, label="specificity")
    for point in scored["operating_points"]:
        label = f"target {point['target_sensitivity']:.2f}: t={point['threshold']:.3f}"
        roc.plot(1 - point["specificity"], point["sensitivity"], "o", label=label)
        sweep.axvline(point["threshold"], ls=":", color="grey")
        sweep.annotate(label, (point["threshold"], 0.02), rotation=90, fontsize=7, va="bottom")
    roc.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"Refer: {group} against the rest")
    sweep.set(xlabel=f"threshold on P({group})", ylabel="on this set", title="Sensitivity and specificity")
    roc.legend(loc="lower right", fontsize=8)
    sweep.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    return fig


def coverage_curve(probs: np.ndarray, y_true: np.ndarray, deferral: dict) -> Figure:
    """Balanced accuracy of the images kept against the share kept, images ranked by the model's confidence, with
    the deferral threshold marked."""
    confidence = probs.max(axis=1)
    order = np.argsort(-confidence)
    coverages = np.linspace(0.05, 1.0, 40)
    accuracies = []
    for coverage in coverages:
        kept = order[: max(int(round(coverage * len(order))), 1)]
        mask = np.zeros(len(order), dtype=bool)
        mask[kept] = True
        accuracies.append(kept_balanced_accuracy(y_true, probs.argmax(axis=1), mask))
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    ax.plot(coverages, accuracies, marker=".")
    ax.axhline(deferral["target_balanced_accuracy"], ls=":", color="grey", label="target balanced accuracy")
    ax.plot(
        deferral["coverage"],
        deferral["balanced_accuracy"],
        "o",
        label=f"defer below confidence {deferral['confidence']:.3f}",
    )
    ax.set(
        xlabel="coverage (share of images the model keeps)",
        ylabel="balanced accuracy of the images kept",
        title="Deferral: coverage against accuracy",
    )
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
