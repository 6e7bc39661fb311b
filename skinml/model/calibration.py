"""The class prior and the two things built on it or fitted on validation: the logit-adjusted loss (Menon et al.,
2021) and temperature scaling (Guo et al., 2017), which changes confidence, never the predicted class."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import softmax
from sklearn.metrics import log_loss


def log_prior(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """log of the class frequencies of `labels` (add-one smoothed, so that a missing class stays finite)."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return np.log((counts + 1.0) / (counts.sum() + n_classes))


def logit_adjusted_crossentropy(train_labels: np.ndarray, n_classes: int) -> Callable:
    """Cross-entropy of softmax(log p + log prior) for a model whose output p is a softmax.

    Trained this way, the model's own output estimates the class probabilities under a uniform prior: its argmax
    is what balanced accuracy asks for, with no class weights.
    """
    shift = keras.ops.convert_to_tensor(log_prior(train_labels, n_classes), dtype="float32")

    def loss(y_true, y_pred):
        logits = keras.ops.log(keras.ops.clip(y_pred, 1e-7, 1.0)) + shift
        return keras.losses.categorical_crossentropy(y_true, logits, from_logits=True)

    return loss


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T in [0.05, 20] minimising the log-loss of softmax(log probs / T)."""
    logits = np.log(np.clip(probs, 1e-7, 1.0))

    def loss(log_t: float) -> float:
        return log_loss(labels, softmax(logits / np.exp(log_t), axis=1), labels=list(range(probs.shape[1])))

    return float(np.exp(minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))
