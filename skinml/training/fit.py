"""Training a classifier on a labelled split: MobileNetV2 transfer learning, returned as a TrainingResult value.

The default path trains on cached features of the frozen part of the backbone: each image's features are computed
once per view and reused; each epoch draws one of `cached_views` augmented views per training image. The baseline
freezes the whole backbone (the head is Dropout -> Dense); with `fine_tune_from` the cache holds the feature map
before that block and the head includes the backbone's top blocks, which are fine-tuned after a warm-up.
`feature_cache=False` trains the plain Keras way, backbone in the loop, augmenting on the fly (a fresh view every
step; the path for a machine with a GPU); with `fine_tune_from` too, the same warm-up then fine-tuning runs there.
How the head trains is skinml.training.head; the train stage (skinml.stages.train) logs what this returns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd

from skinml.core.names import ADJUSTED, TEMPERATURE_METRIC, VAL, metric_name
from skinml.core.recipe import TrainConfig
from skinml.data.augment import augmentation_layers
from skinml.data.loader import image_dataset
from skinml.evaluation.decisions import choose
from skinml.evaluation.familiarity import Familiarity, fit_familiarity
from skinml.evaluation.metrics import classification_metrics, expected_calibration_error
from skinml.features.cache import FeatureCache
from skinml.features.extraction import CachedFeatures, extract_features
from skinml.model.calibration import fit_temperature
from skinml.model.network import (
    TemperatureScaling,
    build_classifier,
    build_feature_extractor,
    build_head,
    drop_training_state,
    set_top_trainable,
)
from skinml.training.head import EpochMetrics, EpochReport, build_top, compile_for_training, fine_tune_schedule
from skinml.training.head import train_head as train_head_on_features
from skinml.training.representations import feature_representations, image_representations

log = logging.getLogger("skinml.train")  # the name users see on training lines


@dataclass
class TrainingResult:
    """A trained classifier and what its training found, before anything is logged."""

    classifier: keras.Model
    val_probs: np.ndarray  # the validation probabilities of the classifier as it ships
    history: dict[str, list[float]]  # each epoch's figures by metric name
    decisions: dict  # chosen on validation (skinml.evaluation.decisions)
    calibration: dict[str, float]  # val_ece; with temperature scaling, the temperature and the adjusted figures
    familiarity: Familiarity  # the training images' representations and the threshold chosen on validation
    feature_seconds: float | None = None  # time to extract (or read) the cached features; None end to end


class Trained(NamedTuple):
    """What either training path returns: the frozen extractor, the trained head, its validation probabilities, the
    familiarity fitted on its representation, and the seconds the cached features took (None end to end)."""

    extractor: keras.Model
    head: keras.Model
    val_probs: np.ndarray
    familiarity: Familiarity
    feature_seconds: float | None = None


def build_extractor(config: TrainConfig) -> keras.Model:
    return build_feature_extractor(config.image_size, config.weights, config.alpha, config.fine_tune_from)


def cached_features(
    config: TrainConfig, data: pd.DataFrame, cache: FeatureCache | None = None
) -> tuple[keras.Model, CachedFeatures, CachedFeatures]:
    """(extractor, train features (n, views, ...), val features (n, 1, ...)) in the cache, computed where missing."""
    extractor = build_extractor(config)
    train, val = data[data["split"] == "train"], data[data["split"] == "val"]
    views = list(range(1, config.cached_views + 1)) if config.augment.enabled and config.cached_views else [0]
    train_x = extract_features(extractor, train["path"].tolist(), views, config.augment, config.seed, cache)
    val_x = extract_features(extractor, val["path"].tolist(), [0], config.augment, config.seed, cache)
    return extractor, train_x, val_x


def fit_temperature_layer(
    config: TrainConfig, probs: np.ndarray, val_labels: np.ndarray, classes: tuple[str, ...]
) -> tuple[TemperatureScaling | None, np.ndarray, dict[str, float]]:
    """The temperature layer fitted on the trained model's validation probabilities (when the config asks for it),
    the validation probabilities of the model as it ships (with the layer), and the calibration figures: the
    validation ECE before, and with the layer the temperature and the ECE and figures after."""
    figures = {metric_name(VAL, "ece"): expected_calibration_error(val_labels, probs)[0]}
    if not config.temperature_scaling:
        return None, probs, figures
    layer = TemperatureScaling(fit_temperature(probs, val_labels), name="temperature")
    scaled = keras.ops.convert_to_numpy(layer(probs))  # the figures of the layer the model ships with
    metrics = classification_metrics(val_labels, scaled, classes)
    ece = expected_calibration_error(val_labels, scaled)[0]
    figures.update(
        {
            TEMPERATURE_METRIC: layer.temperature,
            metric_name(VAL, ADJUSTED + "ece"): ece,
            **{metric_name(VAL, ADJUSTED + k): metrics[k] for k in ("balanced_accuracy", "macro_auc")},
        }
    )
    log.info("temperature %.3f, val ECE %.4f", layer.temperature, ece)
    return layer, scaled, figures


def train_with_cache(
    config: TrainConfig,
    data: pd.DataFrame,
    classes: tuple[str, ...],
    *,
    cache: FeatureCache | None,
    history: dict[str, list[float]],
    on_epoch: EpochReport | None = None,
) -> Trained:
    """Frozen-backbone training from the feature cache."""
    started = time.perf_counter()
    extractor, train_x, val_x = cached_features(config, data, cache)
    feature_seconds = time.perf_counter() - started
    labels = {part: data.loc[data["split"] == part, "label"].to_numpy() for part in ("train", "val")}
    head, val_probs = train_head_on_features(
        config, train_x, labels["train"], val_x, labels["val"], classes, history, on_epoch=on_epoch
    )
    drop_training_state(head)
    familiarity = fit_familiarity(
        feature_representations(head, train_x),  # each training image's first cached view
        feature_representations(head, val_x),
        train_labels=labels["train"],
        target_familiar=config.target_familiar,
        seed=config.seed,
    )
    return Trained(extractor, head, val_probs, familiarity, feature_seconds)


def train_end_to_end(
    config: TrainConfig,
    data: pd.DataFrame,
    classes: tuple[str, ...],
    *,
    history: dict[str, list[float]],
    on_epoch: EpochReport | None = None,
) -> Trained:
    """The plain Keras way: backbone in the loop, on-the-fly augmentation.

    With `fine_tune_from`, the head holds the backbone from that block on: `epochs` with it frozen, then
    `fine_tune_epochs` with it trainable (BatchNorm in inference mode), on fresh augmented images every step.
    """
    extractor = build_extractor(config)
    top = build_top(config)
    head = build_head(extractor.output_shape[1:], len(classes), config.dropout, config.seed, top=top)
    classifier = build_classifier(extractor, head)
    trainer = (
        keras.Sequential([augmentation_layers(config.augment, config.seed), classifier])
        if config.augment.enabled
        else classifier
    )
    train, val = data[data["split"] == "train"], data[data["split"] == "val"]
    train_labels, val_labels = train["label"].to_numpy(), val["label"].to_numpy()
    targets = keras.utils.to_categorical(train_labels, len(classes))
    train_ds = image_dataset(
        train["path"].tolist(), config.image_size, config.batch_size, labels=targets, shuffle_seed=config.seed
    )
    val_ds = image_dataset(val["path"].tolist(), config.image_size, config.batch_size)
    callback = EpochMetrics(val_ds, val_labels, classes, history, predictor=classifier, on_epoch=on_epoch)
    fit = dict(verbose=0, callbacks=[callback], shuffle=False)  # train_ds reshuffles itself every epoch
    compile_for_training(trainer, config, train_labels, len(classes))
    trainer.fit(train_ds, epochs=config.epochs, **fit)
    if top is not None and config.fine_tune_epochs:
        set_top_trainable(head, True)
        compile_for_training(
            trainer, config, train_labels, len(classes), learning_rate=fine_tune_schedule(config, len(train))
        )
        trainer.fit(train_ds, initial_epoch=config.epochs, epochs=config.epochs + config.fine_tune_epochs, **fit)
        set_top_trainable(head, False)
    drop_training_state(trainer)
    familiarity = fit_familiarity(
        image_representations(classifier, train["path"].tolist()),
        image_representations(classifier, val["path"].tolist()),
        train_labels=train_labels,
        target_familiar=config.target_familiar,
        seed=config.seed,
    )
    return Trained(extractor, head, callback.probs, familiarity)


def fit_classifier(
    config: TrainConfig,
    data: pd.DataFrame,
    classes: tuple[str, ...],
    *,
    cache: FeatureCache | None = None,
    on_epoch: EpochReport | None = None,
) -> TrainingResult:
    """Train the classifier of `classes` on `data` (the labelled split: path, split, label) by the recipe; each
    epoch's figures go to `on_epoch`. The temperature layer (when the recipe asks for one) and the decisions are
    chosen on validation."""
    history: dict[str, list[float]] = {}
    if config.feature_cache:
        trained = train_with_cache(config, data, classes, cache=cache, history=history, on_epoch=on_epoch)
    else:
        trained = train_end_to_end(config, data, classes, history=history, on_epoch=on_epoch)
    val_labels = data.loc[data["split"] == "val", "label"].to_numpy()
    temperature, val_probs, calibration = fit_temperature_layer(config, trained.val_probs, val_labels, classes)
    classifier = build_classifier(trained.extractor, trained.head, temperature)
    decisions = choose(
        val_probs,
        val_labels,
        classes,
        positive_classes=config.positive_classes,
        target_sensitivities=config.target_sensitivities,
        target_balanced_accuracy=config.target_balanced_accuracy,
    )
    return TrainingResult(
        classifier=classifier,
        val_probs=val_probs,
        history=history,
        decisions=decisions,
        calibration=calibration,
        familiarity=trained.familiarity,
        feature_seconds=trained.feature_seconds,
    )
