"""Post-hoc adjustments fitted on the validation split: prior (logit) adjustment and temperature scaling.

Prior adjustment (Menon et al., 2021, "Long-tail learning via logit adjustment") subtracts tau * log(prior) from the
logits so that rare classes are predicted as often as balanced accuracy wants; tau is picked on validation.
Temperature scaling (Guo et al., 2017) divides the logits by one T fitted to the validation log-loss: it changes
confidence, never the predicted class.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import softmax
from sklearn.metrics import balanced_accuracy_score, log_loss

from skinml import CLASSES

TAU_GRID = np.round(np.arange(-1.0, 2.01, 0.25), 2)


def adjusted_logits(probs: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """log p + shift (the logits of the probabilities, up to a per-row constant)."""
    return np.log(np.clip(probs, 1e-7, 1.0)) + shift


def log_prior(labels: np.ndarray) -> np.ndarray:
    """log of the class frequencies of `labels` (add-one smoothed, so that a missing class stays finite)."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(float)
    return np.log((counts + 1.0) / (counts.sum() + len(CLASSES)))


def fit_prior_shift(probs: np.ndarray, labels: np.ndarray, train_labels: np.ndarray) -> tuple[np.ndarray, float]:
    """(shift = -tau * log(train prior), tau) maximising balanced accuracy on (probs, labels); tau=0 on ties."""
    prior = log_prior(train_labels)
    scores = {float(tau): balanced_accuracy_score(labels, adjusted_logits(probs, -tau * prior).argmax(axis=1))
              for tau in TAU_GRID}
    best = max(scores.values())
    tau = min((t for t, score in scores.items() if score == best), key=abs)
    return -tau * prior, tau


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T in [0.05, 20] minimising the log-loss of softmax(logits / T)."""
    def loss(log_t: float) -> float:
        return log_loss(labels, softmax(logits / np.exp(log_t), axis=1), labels=list(range(len(CLASSES))))

    return float(np.exp(minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))
