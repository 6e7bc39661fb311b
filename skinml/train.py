"""Training: MobileNetV2 transfer learning, tracked in MLflow.

The default path trains on cached features of the frozen part of the backbone: each image's features are computed
once per view and reused; each epoch draws one of `cached_views` augmented views per training image. The baseline
freezes the whole backbone (the head is Dropout -> Dense); with `fine_tune_from` the cache holds the feature map
before that block and the head includes the backbone's top blocks, which are fine-tuned after a warm-up.
`feature_cache=False` trains the plain Keras way, backbone in the loop, augmenting on the fly (a fresh view every
step; the path for a machine with a GPU); with `fine_tune_from` too, the same warm-up then fine-tuning runs there.
How the head trains is skinml.head_training; this module picks the path and keeps the MLflow run's record.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd

from skinml.calibration import fit_temperature
from skinml.config import DEFAULT_EXPERIMENT, TrainConfig
from skinml.data.augment import augmentation_layers
from skinml.data.loader import image_dataset
from skinml.data.split import read_manifest
from skinml.data.training_set import labelled_split
from skinml.decisions import choose, chosen_thresholds, positive_group
from skinml.engine import effective_precision, pick_engine
from skinml.feature_cache import FeatureCache
from skinml.features import CachedFeatures, extract_features
from skinml.head_training import EpochMetrics, build_top, compile_for_training, fine_tune_schedule, train_head
from skinml.manifests import log_manifest
from skinml.memory import peak_rss_mb
from skinml.metrics import classification_metrics, expected_calibration_error
from skinml.mlflow_names import (
    ADJUSTED,
    BACKBONE_ENGINE_TAG,
    BACKBONE_PRECISION_TAG,
    CLASSES_TAG,
    CONFIG_ARTIFACT,
    FEATURE_SECONDS_TAG,
    PEAK_RSS_MB_TAG,
    TEMPERATURE_METRIC,
    TRAIN_SECONDS_TAG,
    TRAINING_CURVES_ARTIFACT,
    VAL,
    metric_name,
)
from skinml.model import (
    TemperatureScaling,
    build_classifier,
    build_feature_extractor,
    build_head,
    drop_training_state,
    set_top_trainable,
)
from skinml.model_store import log_classifier
from skinml.plots import training_curves
from skinml.tracking import dump_json, log_params_once, stage_run

log = logging.getLogger(__name__)


def build_extractor(config: TrainConfig) -> keras.Model:
    return build_feature_extractor(config.image_size, config.weights, config.alpha, config.fine_tune_from)


def cached_features(config: TrainConfig, data: pd.DataFrame, cache: FeatureCache | None = None
                    ) -> tuple[keras.Model, CachedFeatures, CachedFeatures]:
    """(extractor, train features (n, views, ...), val features (n, 1, ...)) in the cache, computed where missing."""
    extractor = build_extractor(config)
    train, val = data[data["split"] == "train"], data[data["split"] == "val"]
    views = list(range(1, config.cached_views + 1)) if config.augment.enabled and config.cached_views else [0]
    train_x = extract_features(extractor, train["path"].tolist(), views, config.augment, config.seed, cache)
    val_x = extract_features(extractor, val["path"].tolist(), [0], config.augment, config.seed, cache)
    return extractor, train_x, val_x


def fit_temperature_layer(config: TrainConfig, probs: np.ndarray, val_labels: np.ndarray, classes: tuple[str, ...]
                          ) -> tuple[TemperatureScaling | None, np.ndarray]:
    """The temperature layer fitted on the trained model's validation probabilities (when the config asks for it),
    logged to MLflow with the validation ECE before and after, and the validation probabilities of the model as it
    ships (with the layer)."""
    mlflow.log_metric(metric_name(VAL, "ece"), expected_calibration_error(val_labels, probs)[0])
    if not config.temperature_scaling:
        return None, probs
    layer = TemperatureScaling(fit_temperature(probs, val_labels), name="temperature")
    scaled = keras.ops.convert_to_numpy(layer(probs))  # the figures of the layer the model ships with
    metrics = classification_metrics(val_labels, scaled, classes)
    ece = expected_calibration_error(val_labels, scaled)[0]
    mlflow.log_metrics({TEMPERATURE_METRIC: layer.temperature, metric_name(VAL, ADJUSTED + "ece"): ece,
                        **{metric_name(VAL, ADJUSTED + k): metrics[k] for k in ("balanced_accuracy", "macro_auc")}})
    log.info("temperature %.3f, val ECE %.4f", layer.temperature, ece)
    return layer, scaled


def train_with_cache(config: TrainConfig, data: pd.DataFrame, classes: tuple[str, ...], cache: FeatureCache | None,
                     history: dict[str, list[float]]) -> tuple[keras.Model, np.ndarray]:
    """Frozen-backbone training from the feature cache; returns the whole classifier and its validation
    probabilities."""
    started = time.perf_counter()
    extractor, train_x, val_x = cached_features(config, data, cache)
    mlflow.set_tag(FEATURE_SECONDS_TAG, f"{time.perf_counter() - started:.1f}")
    labels = {part: data.loc[data["split"] == part, "label"].to_numpy() for part in ("train", "val")}
    head, val_probs = train_head(config, train_x, labels["train"], val_x, labels["val"], classes, history)
    temperature, val_probs = fit_temperature_layer(config, val_probs, labels["val"], classes)
    drop_training_state(head)
    return build_classifier(extractor, head, temperature), val_probs


def train_end_to_end(config: TrainConfig, data: pd.DataFrame, classes: tuple[str, ...],
                     history: dict[str, list[float]]) -> tuple[keras.Model, np.ndarray]:
    """The plain Keras way: backbone in the loop, on-the-fly augmentation; returns the whole classifier and its
    validation probabilities.

    With `fine_tune_from`, the head holds the backbone from that block on: `epochs` with it frozen, then
    `fine_tune_epochs` with it trainable (BatchNorm in inference mode), on fresh augmented images every step.
    """
    extractor = build_extractor(config)
    top = build_top(config)
    head = build_head(extractor.output_shape[1:], len(classes), config.dropout, config.seed, top)
    classifier = build_classifier(extractor, head)
    trainer = keras.Sequential([augmentation_layers(config.augment, config.seed), classifier]) \
        if config.augment.enabled else classifier
    train, val = data[data["split"] == "train"], data[data["split"] == "val"]
    train_labels, val_labels = train["label"].to_numpy(), val["label"].to_numpy()
    targets = keras.utils.to_categorical(train_labels, len(classes))
    train_ds = image_dataset(train["path"].tolist(), config.image_size, config.batch_size, labels=targets,
                             shuffle_seed=config.seed)
    val_ds = image_dataset(val["path"].tolist(), config.image_size, config.batch_size)
    callback = EpochMetrics(val_ds, val_labels, classes, history, predictor=classifier)
    fit = dict(verbose=0, callbacks=[callback], shuffle=False)  # train_ds reshuffles itself every epoch
    compile_for_training(trainer, config, train_labels, len(classes))
    trainer.fit(train_ds, epochs=config.epochs, **fit)
    if top is not None and config.fine_tune_epochs:
        set_top_trainable(head, True)
        compile_for_training(trainer, config, train_labels, len(classes), fine_tune_schedule(config, len(train)))
        trainer.fit(train_ds, initial_epoch=config.epochs, epochs=config.epochs + config.fine_tune_epochs, **fit)
        set_top_trainable(head, False)
    temperature, val_probs = fit_temperature_layer(config, callback.probs, val_labels, classes)
    drop_training_state(trainer)
    return build_classifier(extractor, head, temperature), val_probs


def train(config: TrainConfig, data_dir: str | Path, manifest_path: str | Path | None = None,
          experiment: str = DEFAULT_EXPERIMENT, parent_run_id: str | None = None,
          cache: FeatureCache | None = None, output: str | Path | None = None) -> dict:
    """Train a classifier on the split in `manifest_path` (else a lesion-grouped split by the config's seed) and log
    everything to MLflow; returns {run_id, model_uri, metrics, ...}."""
    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    manifest = read_manifest(manifest_path) if manifest_path else None
    data, manifest, classes = labelled_split(data_dir, manifest, config)  # bad data: no run at all
    if not positive_group(classes, config.positive_classes):  # a positive class the data lacks: refused here
        logging.getLogger(__name__).warning(
            "no class of %s is a malignant one: no referral threshold is chosen (name the classes that mean refer "
            "with --positive-classes A,B)", list(classes))
    with stage_run("train", experiment, parent_run_id, name=f"train {config.label()}") as run:
        log_params_once({**config.params(), "data_dir": str(Path(data_dir).resolve())})
        mlflow.log_dict(config.to_dict(), CONFIG_ARTIFACT)  # the whole recipe: what retraining reads back
        mlflow.set_tags({BACKBONE_ENGINE_TAG: pick_engine() if config.feature_cache else "tensorflow",
                         BACKBONE_PRECISION_TAG: effective_precision() if config.feature_cache else "f32",
                         CLASSES_TAG: ",".join(classes), **data.attrs.get("data_tags", {})})
        log_manifest(manifest, data_dir, grouped=data.attrs.get("grouped_by", "lesion_id") is not None)
        history: dict[str, list[float]] = {}
        if config.feature_cache:
            classifier, val_probs = train_with_cache(config, data, classes, cache, history)
        else:
            classifier, val_probs = train_end_to_end(config, data, classes, history)
        mlflow.log_figure(training_curves(history), TRAINING_CURVES_ARTIFACT)
        decisions = choose(val_probs, data.loc[data["split"] == "val", "label"].to_numpy(), classes,
                           config.positive_classes, config.target_sensitivities, config.target_balanced_accuracy)
        mlflow.log_metrics(chosen_thresholds(decisions))
        model_info = log_classifier(classifier, classes, decisions)
        train_seconds = time.perf_counter() - started
        final = {name: values[-1] for name, values in history.items()}
        peak_mb = peak_rss_mb()
        mlflow.set_tags({TRAIN_SECONDS_TAG: f"{train_seconds:.1f}", PEAK_RSS_MB_TAG: f"{peak_mb:.0f}"})
        result = {"run_id": run.info.run_id, "model_uri": model_info.model_uri,
                  "runs_model_uri": f"runs:/{run.info.run_id}/model", "metrics": final,
                  "train_seconds": train_seconds, "peak_rss_mb": peak_mb, "config": config.params(),
                  "classes": list(classes)}
        dump_json(result, output)
        return result
