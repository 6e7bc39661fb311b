import keras
import numpy as np
import pytest
from scipy.special import softmax

from skinml.core.recipe import TrainConfig, preset
from skinml.model.calibration import fit_temperature, logit_adjusted_crossentropy
from skinml.training.head import compile_for_training


def test_temperature_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(20000, 7))
    true_t = 2.5
    p = softmax(logits / true_t, axis=1)
    labels = np.array([rng.choice(7, p=row) for row in p])
    assert fit_temperature(softmax(logits, axis=1), labels) == pytest.approx(true_t, rel=0.05)


def test_logit_adjusted_loss_is_the_crossentropy_of_the_prior_shifted_softmax():
    train_labels = np.repeat(np.arange(7), [5, 5, 10, 10, 20, 100, 50])
    probs = softmax(np.random.default_rng(2).normal(size=(4, 7)), axis=1).astype("float32")
    targets = np.eye(7, dtype="float32")[[0, 5, 6, 3]]
    loss = keras.ops.convert_to_numpy(logit_adjusted_crossentropy(train_labels, probs.shape[1])(targets, probs))
    shifted = softmax(np.log(probs) + np.log((np.bincount(train_labels) + 1) / (len(train_labels) + 7)), axis=1)
    np.testing.assert_allclose(loss, -np.log((shifted * targets).sum(axis=1)), rtol=1e-5)


@pytest.mark.parametrize("loss, expected", [("crossentropy", "prior"), ("logit_adjusted", "uniform")])
def test_on_uninformative_features_the_loss_decides_what_the_model_outputs(loss, expected):
    labels = np.repeat(np.arange(7), [10, 10, 20, 20, 40, 400, 100])
    features = np.zeros((len(labels), 4), dtype="float32")  # nothing to learn but the bias
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(7, activation="softmax")])
    compile_for_training(model, TrainConfig(loss=loss, learning_rate=0.05), labels, 7)
    model.fit(features, np.eye(7)[labels], epochs=60, batch_size=len(labels), verbose=0)
    output = np.asarray(model.predict(features[:1], verbose=0))[0]
    target = np.bincount(labels) / len(labels) if expected == "prior" else np.full(7, 1 / 7)
    np.testing.assert_allclose(output, target, atol=0.02)


def test_config_rejects_unknown_values_naming_the_field():
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig().replace(loss="focal")
    with pytest.raises(ValueError, match="cached_views must be >= 0"):
        TrainConfig().replace(cached_views=-1)
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig().replace(class_weight="balanced")  # retired (docs/ablation.md)


def test_baseline_preset_is_the_baseline_and_best_differs_only_in_documented_fields():
    baseline, best = preset("baseline"), preset("best")
    assert (baseline.image_size, baseline.dropout, baseline.learning_rate, baseline.epochs, baseline.batch_size) == (
        224,
        0.2,
        1e-3,
        10,
        32,
    )
    assert baseline.fine_tune_from is None and baseline.loss == "crossentropy" and not baseline.temperature_scaling
    assert best.fine_tune_from and best.temperature_scaling and best.image_size == 224
