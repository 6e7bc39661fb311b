import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import balanced_accuracy_score

from skinml.calibration import adjusted_logits, fit_prior_shift, fit_temperature
from skinml.config import TrainConfig, preset
from skinml.train import class_weights


def test_prior_shift_recovers_the_rare_classes_a_prior_biased_model_misses():
    rng = np.random.default_rng(0)
    counts = np.array([40, 40, 40, 40, 40, 40, 760])  # one dominant class, like nv
    labels = np.repeat(np.arange(7), counts)
    # A model whose logits carry the training prior: informative, but pulled towards the dominant class.
    logits = rng.normal(size=(len(labels), 7)) + 2.0 * np.eye(7)[labels] + np.log(counts / counts.sum())
    probs = softmax(logits, axis=1)
    shift, tau = fit_prior_shift(probs, labels, train_labels=labels)
    before = balanced_accuracy_score(labels, probs.argmax(axis=1))
    after = balanced_accuracy_score(labels, adjusted_logits(probs, shift).argmax(axis=1))
    assert tau > 0 and after > before + 0.1
    np.testing.assert_allclose(shift, -tau * np.log((counts + 1) / (counts.sum() + 7)))


def test_prior_shift_is_zero_when_adjusting_cannot_help():
    labels = np.arange(7).repeat(10)
    probs = np.full((70, 7), 0.01)
    probs[np.arange(70), labels] = 0.94  # already perfect
    shift, tau = fit_prior_shift(probs, labels, train_labels=labels)
    assert tau == 0.0 and not shift.any()


def test_temperature_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(20000, 7))
    true_t = 2.5
    p = softmax(logits / true_t, axis=1)
    labels = np.array([rng.choice(7, p=row) for row in p])
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.05)


def test_class_weights():
    labels = np.array([0] * 10 + [1] * 30 + [6] * 60)
    assert class_weights(labels, "none") is None
    balanced = class_weights(labels, "balanced")
    np.testing.assert_allclose(balanced[[0, 1, 6]], [100 / 30, 100 / 90, 100 / 180])
    assert balanced[[2, 3, 4, 5]].tolist() == [1, 1, 1, 1]  # absent classes
    np.testing.assert_allclose(class_weights(labels, "sqrt"), np.sqrt(balanced))


def test_config_rejects_unknown_values_naming_the_field():
    with pytest.raises(ValueError, match="class_weight must be one of"):
        TrainConfig().replace(class_weight="inverse")
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig().replace(label_smoothing=1.5)
    with pytest.raises(ValueError, match="fine_tune_from needs the feature cache"):
        preset("best").replace(feature_cache=False)


def test_baseline_preset_is_the_baseline_and_best_differs_only_in_documented_fields():
    baseline, best = preset("baseline"), preset("best")
    assert (baseline.image_size, baseline.dropout, baseline.learning_rate, baseline.epochs, baseline.batch_size) == \
        (224, 0.2, 1e-3, 10, 32)
    assert baseline.fine_tune_from is None and baseline.class_weight == "none" and baseline.label_smoothing == 0
    assert not baseline.prior_adjustment and not baseline.temperature_scaling
    assert best.fine_tune_from and best.temperature_scaling and best.image_size == 224
