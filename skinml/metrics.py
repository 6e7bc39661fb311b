"""Classification metrics for the 7 classes (scikit-learn)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, classification_report,
                             precision_recall_fscore_support, roc_auc_score)

from skinml import CLASSES


def per_class_auc(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """One-vs-rest ROC AUC per class; NaN for a class absent from (or the only class of) y_true."""
    aucs = {}
    for k, name in enumerate(CLASSES):
        positives = y_true == k
        aucs[name] = float(roc_auc_score(positives, probs[:, k])) if 0 < positives.sum() < len(y_true) else np.nan
    return aucs


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """accuracy, balanced_accuracy, macro/weighted precision/recall/F1, macro_auc and per_class metrics."""
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(CLASSES)))
    aucs = per_class_auc(y_true, probs)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    result = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_auc": float(np.nanmean(list(aucs.values()))),
        "n_images": int(len(y_true)),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average,
                                                     zero_division=0)
        result.update({f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)})
    result["per_class"] = {
        name: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
               "auc": aucs[name], "support": int(support[k])}
        for k, name in enumerate(CLASSES)
    }
    return result


def report_text(y_true: np.ndarray, probs: np.ndarray) -> str:
    """scikit-learn's text classification report."""
    return classification_report(y_true, probs.argmax(axis=1), labels=list(range(len(CLASSES))),
                                 target_names=list(CLASSES), digits=3, zero_division=0)


def flat_metrics(metrics: dict, prefix: str) -> dict[str, float]:
    """MLflow metric names: `<prefix>_accuracy`, ..., `<prefix>_recall_<class>`, ... (NaNs left out)."""
    flat = {f"{prefix}_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
    for name, values in metrics.get("per_class", {}).items():
        flat.update({f"{prefix}_{k}_{name}": v for k, v in values.items() if k != "support"})
    return {k: float(v) for k, v in flat.items() if v == v}
