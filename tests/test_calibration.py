import keras
import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import balanced_accuracy_score

from skinml.calibration import adjusted_logits, fit_prior_shift, fit_temperature
from skinml.config import TrainConfig, preset
from skinml.train import class_weights, compile_for_training, fit_head_on_features, logit_adjusted_crossentropy


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


def test_logit_adjusted_loss_is_the_crossentropy_of_the_prior_shifted_softmax():
    train_labels = np.repeat(np.arange(7), [5, 5, 10, 10, 20, 100, 50])
    probs = softmax(np.random.default_rng(2).normal(size=(4, 7)), axis=1).astype("float32")
    targets = np.eye(7, dtype="float32")[[0, 5, 6, 3]]
    loss = keras.ops.convert_to_numpy(logit_adjusted_crossentropy(train_labels)(targets, probs))
    shifted = softmax(np.log(probs) + np.log((np.bincount(train_labels) + 1) / (len(train_labels) + 7)), axis=1)
    np.testing.assert_allclose(loss, -np.log((shifted * targets).sum(axis=1)), rtol=1e-5)


@pytest.mark.parametrize("loss, expected", [("crossentropy", "prior"), ("logit_adjusted", "uniform")])
def test_on_uninformative_features_the_loss_decides_what_the_model_outputs(loss, expected):
    labels = np.repeat(np.arange(7), [10, 10, 20, 20, 40, 400, 100])
    features = np.zeros((len(labels), 4), dtype="float32")  # nothing to learn but the bias
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(7, activation="softmax")])
    compile_for_training(model, TrainConfig(loss=loss, learning_rate=0.05), labels)
    model.fit(features, np.eye(7)[labels], epochs=60, batch_size=len(labels), verbose=0)
    output = np.asarray(model.predict(features[:1], verbose=0))[0]
    target = np.bincount(labels) / len(labels) if expected == "prior" else np.full(7, 1 / 7)
    np.testing.assert_allclose(output, target, atol=0.02)


@pytest.mark.parametrize("sampling, expected", [("none", "prior"), ("balanced", "uniform")])
def test_on_uninformative_features_the_sampling_decides_what_the_model_outputs(sampling, expected):
    labels = np.repeat(np.arange(7), [10, 10, 20, 20, 40, 400, 100])
    views = np.zeros((len(labels), 2, 4), dtype="float32")  # two cached views per image, nothing to learn in them
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(7, activation="softmax")])
    config = TrainConfig(sampling=sampling, learning_rate=0.05, epochs=60, batch_size=len(labels))
    fit_head_on_features(model, views, labels, config, callbacks=[])
    output = np.asarray(model.predict(views[:1, 0], verbose=0))[0]
    target = np.bincount(labels) / len(labels) if expected == "prior" else np.full(7, 1 / 7)
    np.testing.assert_allclose(output, target, atol=0.03)


def test_config_rejects_unknown_values_naming_the_field():
    with pytest.raises(ValueError, match="class_weight must be one of"):
        TrainConfig().replace(class_weight="inverse")
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig().replace(label_smoothing=1.5)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig().replace(loss="focal")
    with pytest.raises(ValueError, match="already balances the classes"):
        TrainConfig().replace(loss="logit_adjusted", class_weight="balanced")
    with pytest.raises(ValueError, match="sampling must be one of"):
        TrainConfig().replace(sampling="oversample")
    for balanced_already in (dict(class_weight="sqrt"), dict(loss="logit_adjusted")):
        with pytest.raises(ValueError, match="sampling 'balanced' already balances the classes"):
            TrainConfig().replace(sampling="balanced", **balanced_already)


def test_baseline_preset_is_the_baseline_and_best_differs_only_in_documented_fields():
    baseline, best = preset("baseline"), preset("best")
    assert (baseline.image_size, baseline.dropout, baseline.learning_rate, baseline.epochs, baseline.batch_size) == \
        (224, 0.2, 1e-3, 10, 32)
    assert baseline.fine_tune_from is None and baseline.class_weight == "none" and baseline.label_smoothing == 0
    assert not baseline.prior_adjustment and not baseline.temperature_scaling
    assert best.fine_tune_from and best.temperature_scaling and best.image_size == 224
