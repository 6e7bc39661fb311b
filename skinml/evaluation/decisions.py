"""Decisions a clinician acts on: refer when the probability of the positive group ("refer": malignant) passes a
threshold chosen on validation for a target sensitivity, and defer (look again) when the model's confidence is below
the value chosen on validation for a target balanced accuracy of the images it keeps.

Chosen at training on the validation split, shipped with the model (`decisions.json`), served (`p_positive`,
`refer`, `defer`) and scored on test, with lesion-bootstrap intervals, at evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from skinml.core.errors import OptionError
from skinml.core.names import DEFER, VAL, decision_name, interval_name, point_name
from skinml.evaluation.metrics import lesion_resample_counts, percentile_interval

# Class names that mean a malignant lesion in the public sets (HAM10000's akiec/bcc/mel, ISIC 2019's AK/BCC/MEL/SCC,
# PAD-UFES-20's BCC/MEL/SCC, ISIC 2020's melanoma target) and in sets users name themselves; case does not matter.
MALIGNANT_NAMES = frozenset(
    {
        "akiec",
        "ak",
        "bcc",
        "mel",
        "scc",
        "melanoma",
        "malignant",
        "cancer",
        "carcinoma",
        "basal cell carcinoma",
        "squamous cell carcinoma",
        "actinic keratosis",
    }
)
# A binary model's class that means "refer" by default when it is named so (else --positive-classes).
BINARY_POSITIVE_NAMES = frozenset({"positive", "1"})
FIGURES = ("sensitivity", "specificity", "ppv", "npv", "referral_rate")


def positive_group(classes: Sequence[str], given: Sequence[str] = ()) -> tuple[str, ...]:
    """The classes that mean "refer": `given`, else the malignant classes present (MALIGNANT_NAMES), else a binary
    model's class named `positive` or `1`; () when none can be told, or when every class would be one (no operating
    points then: say --positive-classes)."""
    if given:
        unknown = sorted(set(given) - set(classes))
        if unknown:
            raise OptionError(f"positive class(es) {unknown} are not classes of the data {list(classes)}")
        return tuple(c for c in classes if c in given)
    malignant = tuple(c for c in classes if c.lower() in MALIGNANT_NAMES)
    if not malignant and len(classes) == 2:
        malignant = tuple(c for c in classes if c.lower() in BINARY_POSITIVE_NAMES)
    return malignant if 0 < len(malignant) < len(classes) else ()


def p_positive(probs: np.ndarray, classes: Sequence[str], positive: Sequence[str]) -> np.ndarray:
    """P(positive group) per image: the sum of its classes' probabilities."""
    return np.asarray(probs)[:, [list(classes).index(c) for c in positive]].sum(axis=1)


def positives(y_true: np.ndarray, classes: Sequence[str], positive: Sequence[str]) -> np.ndarray:
    """Which images (class indices `y_true`) belong to the positive group."""
    return np.isin(np.asarray(classes)[np.asarray(y_true)], list(positive))


def threshold_for_sensitivity(scores: np.ndarray, positive: np.ndarray, target: float) -> float:
    """The highest threshold at which at least `target` of the positive images score at or above it (there must be
    some)."""
    ranked = np.sort(scores[positive & np.isfinite(scores)])[::-1]
    return float(ranked[max(math.ceil(target * len(ranked) - 1e-9), 1) - 1])  # 1e-9: 0.55 * 100 is 55.000...01


def kept_balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, kept: np.ndarray) -> float:
    """Balanced accuracy of the kept images over every class of `y_true`: a class the model defers entirely counts
    with recall 0 (scikit-learn's would leave it out and flatter the images kept)."""
    recalls = [
        float((y_pred[kept & (y_true == k)] == k).mean()) if (kept & (y_true == k)).any() else 0.0
        for k in np.unique(y_true)
    ]
    return float(np.mean(recalls))


def deferral_confidence(confidence: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, target: float) -> float:
    """The lowest confidence (top-class probability) such that the images at or above it reach `target` balanced
    accuracy (candidates: the percentiles 0-99 of `confidence`); just above 1 (defer everything) when none does."""
    for candidate in np.unique(np.percentile(confidence, np.arange(100))):
        if kept_balanced_accuracy(y_true, y_pred, confidence >= candidate) >= target:
            return float(candidate)
    return float(np.nextafter(1.0, 2.0))  # above any probability: every image deferred


def defers_everything(deferral: dict) -> bool:
    """Whether a deferral's confidence is above any probability: no level reached the target on validation."""
    return deferral["confidence"] > 1


def choose(
    probs: np.ndarray,
    y_true: np.ndarray,
    classes: Sequence[str],
    *,
    positive_classes: Sequence[str],
    target_sensitivities: Sequence[float],
    target_balanced_accuracy: float,
) -> dict:
    """The decisions chosen on validation (`probs`, `y_true`: the validation split): the positive group, a
    threshold on P(positive) per target sensitivity, the deferral confidence."""
    y_true = np.asarray(y_true)
    decisions: dict = {"positive_classes": list(positive_group(classes, positive_classes)), "operating_points": []}
    is_positive = positives(y_true, classes, decisions["positive_classes"])
    if decisions["positive_classes"] and is_positive.any() and not is_positive.all():
        scores = p_positive(probs, classes, decisions["positive_classes"])
        decisions["operating_points"] = [
            {"target_sensitivity": float(t), "threshold": threshold_for_sensitivity(scores, is_positive, t)}
            for t in target_sensitivities
        ]
    confidence = np.asarray(probs).max(axis=1)
    decisions["deferral"] = {
        "target_balanced_accuracy": float(target_balanced_accuracy),
        "confidence": deferral_confidence(
            confidence, y_true, np.asarray(probs).argmax(axis=1), target_balanced_accuracy
        ),
    }
    return decisions


def chosen_thresholds(decisions: dict) -> dict[str, float]:
    """What training chose on validation, as MLflow metrics: `val_sens90_threshold`, ..., `val_defer_confidence`."""
    named = {
        decision_name(VAL, point_name(point["target_sensitivity"]), "threshold"): point["threshold"]
        for point in decisions["operating_points"]
    }
    return {**named, decision_name(VAL, DEFER, "confidence"): decisions["deferral"]["confidence"]}


def referral_counts(
    weights: np.ndarray, scores: np.ndarray, is_positive: np.ndarray, threshold: float
) -> dict[str, np.ndarray]:
    """Sensitivity, specificity, PPV, NPV and referral rate of "refer when the score is at or above `threshold`", one
    value per row of `weights` (how often each image counts: a bootstrap resample, or ones for the set itself); NaN
    where a figure has no case."""
    refer = scores >= threshold
    tp, fn = weights @ (refer & is_positive), weights @ (~refer & is_positive)
    fp, tn = weights @ (refer & ~is_positive), weights @ (~refer & ~is_positive)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "ppv": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "referral_rate": (weights @ refer) / weights.sum(axis=-1),
        }


def referral_figures(scores: np.ndarray, is_positive: np.ndarray, threshold: float) -> dict[str, float]:
    """The referral figures of the set itself (each image once)."""
    return {k: float(v) for k, v in referral_counts(np.ones(len(scores)), scores, is_positive, threshold).items()}


def score(
    probs: np.ndarray,
    y_true: np.ndarray,
    classes: Sequence[str],
    decisions: dict,
    lesions,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """The decisions' figures on a labelled set (test, or an external one): per operating point its referral
    figures with 95% intervals over bootstrap resamples of whole lesions; the deferral's coverage and the balanced
    accuracy of the images kept."""
    probs, y_true = np.asarray(probs), np.asarray(y_true)
    scored: dict = {"positive_classes": list(decisions.get("positive_classes", [])), "operating_points": []}
    if decisions.get("positive_classes"):
        scores = p_positive(probs, classes, decisions["positive_classes"])
        is_positive = positives(y_true, classes, decisions["positive_classes"])
        resamples = lesion_resample_counts(lesions, n_resamples, seed)
        for point in decisions["operating_points"]:
            draws = referral_counts(resamples, scores, is_positive, point["threshold"])
            figures = referral_figures(scores, is_positive, point["threshold"])
            scored["operating_points"].append(
                {**point, **figures, "ci95": {name: percentile_interval(draws[name]) for name in FIGURES}}
            )
    kept = probs.max(axis=1) >= decisions["deferral"]["confidence"]
    scored["deferral"] = {
        **decisions["deferral"],
        "coverage": float(kept.mean()),
        "balanced_accuracy": kept_balanced_accuracy(y_true, probs.argmax(axis=1), kept) if kept.any() else float("nan"),
    }  # no image kept: no figure (NaN is not logged)
    return scored


def decision_metrics(scored: dict, prefix: str) -> dict[str, float]:
    """MLflow names: `<prefix>_sens90_threshold`, `<prefix>_sens90_{sensitivity,...}` and their `_ci95_low/high`;
    `<prefix>_defer_confidence`, `<prefix>_defer_coverage`, `<prefix>_defer_balanced_accuracy`."""
    named: dict[str, float] = {}
    for point in scored["operating_points"]:
        name = point_name(point["target_sensitivity"])
        named[decision_name(prefix, name, "threshold")] = point["threshold"]
        for figure in FIGURES:
            named[decision_name(prefix, name, figure)] = point[figure]
            for end, bound in zip(("low", "high"), point["ci95"][figure]):
                named[interval_name(prefix, f"{name}_{figure}", end)] = bound
    deferral = scored["deferral"]
    named.update(
        {
            decision_name(prefix, DEFER, figure): deferral[figure]
            for figure in ("confidence", "coverage", "balanced_accuracy")
        }
    )
    return {k: float(v) for k, v in named.items() if v == v}


def decisions_text(scored: dict) -> str:
    """One sentence per decision, for the registry and the report."""
    lines = []
    for point in scored["operating_points"]:
        ci = point["ci95"]
        lines.append(
            f"refer when P({'+'.join(scored.get('positive_classes', []))}) >= {point['threshold']:.3f} "
            f"(target sensitivity {point['target_sensitivity']:.2f}): sensitivity {point['sensitivity']:.3f} "
            f"[{ci['sensitivity'][0]:.3f}, {ci['sensitivity'][1]:.3f}], specificity "
            f"{point['specificity']:.3f} [{ci['specificity'][0]:.3f}, {ci['specificity'][1]:.3f}], "
            f"referral rate {point['referral_rate']:.3f}"
        )
    deferral = scored["deferral"]
    target = f"{deferral['target_balanced_accuracy']:.2f}"
    if defers_everything(deferral):
        lines.append(
            f"no deferral (no confidence reached balanced accuracy {target} on validation; the answers carry "
            "no `defer`)"
        )
    else:
        lines.append(
            f"defer below confidence {deferral['confidence']:.3f} (target balanced accuracy {target}): "
            f"coverage {deferral['coverage']:.3f}, balanced accuracy of the rest "
            f"{deferral['balanced_accuracy']:.3f}"
        )
    return "; ".join(lines)
