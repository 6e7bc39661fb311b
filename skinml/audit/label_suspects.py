"""Label suspects: images whose given label the other images' evidence disputes, by confident learning (cleanlab)
on out-of-fold probabilities of a linear head on the frozen features (k folds, grouped: no image is scored by a
head that saw its lesion)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FOLDS = 5
COMPONENTS = 128  # the head sees the features' first principal components: seconds instead of minutes
SUSPECT_COLUMNS = ["image_id", "given", "suggested", "label_quality", "given_probability", "suggested_probability"]


def out_of_fold_probabilities(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, folds: int = FOLDS, seed: int = 42
) -> np.ndarray:
    """(n, classes) probabilities of each image from a head trained on the folds without its group."""
    smallest = int(np.bincount(labels).min())
    folds = max(2, min(folds, smallest, len(set(groups))))
    components = max(1, min(COMPONENTS, features.shape[1], len(features) // (folds + 1)))  # below any training fold
    head = make_pipeline(
        StandardScaler(),
        PCA(n_components=components, random_state=seed),
        LogisticRegression(max_iter=200, tol=1e-3),  # converges in ~100 steps on HAM10000: 3 s a fold
    )
    split = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a head short of convergence still ranks: not the user's concern
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cross_val_predict(head, features, labels, groups=groups, cv=split, method="predict_proba")


def can_rank(labels: np.ndarray, groups: np.ndarray) -> bool:
    """Whether out-of-fold probabilities exist: two classes or more, each in two groups or more."""
    per_class = pd.Series(groups).groupby(np.asarray(labels)).nunique()
    return len(per_class) >= 2 and int(per_class.min()) >= 2


def label_suspects(frame: pd.DataFrame, probabilities: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """The images confident learning finds mislabelled, most suspect first: columns image_id, given, suggested,
    label_quality (0..1, low: suspect), and the head's probability of the given and the suggested label."""
    labels = pd.Categorical(frame["dx"], categories=classes).codes
    issues = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(labels, probabilities)
    suggested = probabilities.argmax(axis=1)
    return pd.DataFrame(
        {
            "image_id": frame["image_id"].to_numpy()[issues],
            "given": np.asarray(classes)[labels[issues]],
            "suggested": np.asarray(classes)[suggested[issues]],
            "label_quality": quality[issues].round(4),
            "given_probability": probabilities[issues, labels[issues]].round(4),
            "suggested_probability": probabilities[issues, suggested[issues]].round(4),
        },
        columns=SUSPECT_COLUMNS,
    )
