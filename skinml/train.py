"""Training: MobileNetV2 transfer learning, tracked in MLflow.

The default path trains on cached features of the frozen part of the backbone: each image's features are computed
once per view and reused; each epoch draws one of `cached_views` augmented views per training image. The baseline
freezes the whole backbone (the head is Dropout -> Dense); with `fine_tune_from` the cache holds the feature map
before that block and the head includes the backbone's top blocks, which are fine-tuned after a warm-up.
`feature_cache=False` trains the plain Keras way, backbone in the loop, augmenting on the fly (a fresh view every
step; the path for a machine with a GPU); with `fine_tune_from` too, the same warm-up then fine-tuning runs there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd

from skinml.calibration import fit_temperature, logit_adjusted_crossentropy
from skinml.config import DEFAULT_EXPERIMENT, TrainConfig
from skinml.data.augment import augmentation_layers
from skinml.data.loader import image_dataset
from skinml.data.split import read_manifest
from skinml.data.training_set import labelled_split
from skinml.decisions import choose, chosen_thresholds, positive_group
from skinml.engine import effective_precision, pick_engine, predictor
from skinml.features import FeatureCache, extract_features
from skinml.manifests import log_manifest
from skinml.memory import peak_rss_mb
from skinml.metrics import classification_metrics, expected_calibration_error
from skinml.model import (
    PREDICT_BATCH_SIZE,
    TemperatureScaling,
    build_backbone_top,
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
LearningRate = float | keras.optimizers.schedules.LearningRateSchedule


class EpochMetrics(keras.callbacks.Callback):
    """Validation loss/accuracy/balanced accuracy at each epoch end, logged with the train metrics to MLflow."""

    def __init__(self, val_inputs, val_labels: np.ndarray, classes: tuple[str, ...], history: dict[str, list[float]],
                 predictor: keras.Model | None = None, stop_when: Callable[[int, dict], bool] | None = None):
        super().__init__()
        self.val_inputs, self.val_labels, self.classes, self.history = val_inputs, val_labels, classes, history
        self.predictor = predictor  # what to validate, when not the model being fitted (e.g. without augmentation)
        self.stop_when = stop_when  # given the epoch and its metrics, whether to stop (a sweep's pruner)
        self.probs: np.ndarray | None = None  # the last epoch's validation probabilities

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        # datasets come batched; arrays are cached features
        batch_size = PREDICT_BATCH_SIZE if isinstance(self.val_inputs, np.ndarray) else None
        probs = np.asarray((self.predictor or self.model).predict(self.val_inputs, batch_size=batch_size,
                                                                  verbose=0))
        self.probs = probs
        picked = np.clip(probs[np.arange(len(probs)), self.val_labels], 1e-7, 1.0)
        val = classification_metrics(self.val_labels, probs, self.classes)
        # on the training batches, as Keras computes them
        train_recalls = [logs[f"recall_{k}"] for k in range(len(self.classes))]
        metrics = {"train_loss": logs["loss"], "train_accuracy": logs["accuracy"],
                   "train_balanced_accuracy": float(np.mean(train_recalls)),
                   "val_loss": float(-np.log(picked).mean()), "val_accuracy": val["accuracy"],
                   "val_balanced_accuracy": val["balanced_accuracy"], "val_macro_auc": val["macro_auc"]}
        for name, value in metrics.items():
            self.history.setdefault(name, []).append(float(value))
        mlflow.log_metrics(metrics, step=epoch + 1)
        log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in metrics.items()})
        if self.stop_when and self.stop_when(epoch, metrics):
            self.model.stop_training = True


def compile_for_training(model: keras.Model, config: TrainConfig, train_labels: np.ndarray, n_classes: int,
                         learning_rate: LearningRate | None = None) -> None:
    """Compile with the recipe's loss and optimizer, and a recall metric per class (`recall_<k>`)."""
    loss = (logit_adjusted_crossentropy(train_labels, n_classes) if config.loss == "logit_adjusted"
            else keras.losses.CategoricalCrossentropy())
    per_class_recall = [keras.metrics.Recall(top_k=1, class_id=k, name=f"recall_{k}")
                        for k in range(n_classes)]  # their mean is the balanced accuracy
    model.compile(optimizer=keras.optimizers.Adam(learning_rate or config.learning_rate), loss=loss,
                  metrics=["accuracy", *per_class_recall])


def fit_head_on_features(head: keras.Model, train_views: np.ndarray, train_labels: np.ndarray, config: TrainConfig,
                         callbacks: list[keras.callbacks.Callback], epochs: int | None = None, first_epoch: int = 0,
                         learning_rate: LearningRate | None = None) -> None:
    """Train the head on cached features; every epoch draws one view per image (train_views: (n, views, ...)).

    Epochs are numbered from `first_epoch` (a fine-tuning phase continues the warm-up's numbering).
    """
    compile_for_training(head, config, train_labels, int(head.output_shape[-1]), learning_rate)
    rng = np.random.default_rng(config.seed + first_epoch)
    targets = keras.utils.to_categorical(train_labels, int(head.output_shape[-1]))
    n, n_views = train_views.shape[:2]
    for epoch in range(first_epoch, first_epoch + (config.epochs if epochs is None else epochs)):
        x = train_views[np.arange(n), rng.integers(n_views, size=n)]
        head.fit(x, targets, batch_size=config.batch_size, shuffle=True, epochs=epoch + 1, initial_epoch=epoch,
                 verbose=0, callbacks=callbacks)
        if head.stop_training:
            break


def build_extractor(config: TrainConfig) -> keras.Model:
    return build_feature_extractor(config.image_size, config.weights, config.alpha, config.fine_tune_from)


def build_top(config: TrainConfig) -> keras.Model | None:
    """The backbone from block `fine_tune_from` on, frozen until fine-tuning; None when the whole backbone is frozen."""
    if not config.fine_tune_from:
        return None
    return build_backbone_top(config.image_size, config.weights, config.alpha, config.fine_tune_from)


def cached_features(config: TrainConfig, data: pd.DataFrame, cache: FeatureCache | None = None
                    ) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """(extractor, train features (n, views, ...), val features (n, ...)) from the cache, computed where missing."""
    extractor = build_extractor(config)
    train, val = data[data["split"] == "train"], data[data["split"] == "val"]
    views = list(range(1, config.cached_views + 1)) if config.augment.enabled and config.cached_views else [0]
    train_x = extract_features(extractor, train["path"].tolist(), views, config.augment, config.seed, cache)
    val_x = extract_features(extractor, val["path"].tolist(), [0], config.augment, config.seed, cache)[:, 0]
    return extractor, train_x, val_x


def train_head(config: TrainConfig, train_x: np.ndarray, train_labels: np.ndarray, val_x: np.ndarray,
               val_labels: np.ndarray, classes: tuple[str, ...], history: dict[str, list[float]],
               stop_when: Callable[[int, dict], bool] | None = None) -> tuple[keras.Model, np.ndarray]:
    """A new head trained on features, validated and logged (to the active MLflow run) at every epoch; returns it
    with its validation probabilities.

    With `fine_tune_from`, the head holds the backbone's top: `epochs` with it frozen (trained on the top's pooled
    output, computed once per view), then `fine_tune_epochs` with it trainable, the learning rate rising to
    `fine_tune_learning_rate` over one epoch, then decaying to 0 (cosine).
    """
    top = build_top(config)
    head = build_head(train_x.shape[2:], len(classes), config.dropout, config.seed, top)
    validation = EpochMetrics(val_x, val_labels, classes, history, stop_when=stop_when)
    if top is None:
        fit_head_on_features(head, train_x, train_labels, config, [validation])
        return head, validation.probs
    warm_up = warm_up_head(head)  # the frozen top's pooled output is computed once, not once per epoch
    pooled_train, pooled_val = pooled_top_features(top, train_x), pooled_top_features(top, val_x[:, None])[:, 0]
    validation.val_inputs = pooled_val
    fit_head_on_features(warm_up, pooled_train, train_labels, config, [validation])
    validation.val_inputs = val_x
    if config.fine_tune_epochs and not warm_up.stop_training:
        set_top_trainable(head, True)
        fit_head_on_features(head, train_x, train_labels, config, [validation], epochs=config.fine_tune_epochs,
                             first_epoch=config.epochs, learning_rate=fine_tune_schedule(config, len(train_x)))
        set_top_trainable(head, False)  # saved frozen: nothing trains it further by accident
    return head, validation.probs


def pooled_top_features(top: keras.Model, maps: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The frozen backbone top's pooled output for every map of `maps` (n, views, *map_shape) -> (n, views, pooled),
    run where the extractor runs (skinml.engine: OpenVINO on a CPU, ~3x TensorFlow's speed here)."""
    inputs = keras.Input(maps.shape[2:], name="features")
    pooled = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(top(inputs)), name="top_pooled")
    run = predictor(pooled)
    flat = maps.reshape(-1, *maps.shape[2:])
    out = np.concatenate([run(flat[i:i + batch_size]) for i in range(0, len(flat), batch_size)])
    return out.reshape(*maps.shape[:2], -1)


def warm_up_head(head: keras.Model) -> keras.Model:
    """The head's Dropout -> Dense on the frozen top's pooled output: training it trains the head's own layers."""
    dense = head.get_layer("probs")
    inputs = keras.Input((dense.kernel.shape[0],), name="pooled")
    return keras.Model(inputs, dense(head.get_layer("dropout")(inputs)), name="warm_up_head")


def fine_tune_schedule(config: TrainConfig, train_images: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """The fine-tuning learning rate: rising from 0 to `fine_tune_learning_rate` over one epoch, then cosine to 0.

    Adam's first steps move every weight by ~lr whatever its gradient, hence the ramp-up; the cosine decay steadies
    the last epochs (docs/ablation.md).
    """
    steps_per_epoch = -(-train_images // config.batch_size)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, config.fine_tune_epochs - 1) * steps_per_epoch,
        warmup_target=config.fine_tune_learning_rate, warmup_steps=steps_per_epoch)


def fit_temperature_layer(config: TrainConfig, probs: np.ndarray, val_labels: np.ndarray, classes: tuple[str, ...]
                          ) -> tuple[TemperatureScaling | None, np.ndarray]:
    """The temperature layer fitted on the trained model's validation probabilities (when the config asks for it),
    logged to MLflow with the validation ECE before and after, and the validation probabilities of the model as it
    ships (with the layer)."""
    mlflow.log_metric("val_ece", expected_calibration_error(val_labels, probs)[0])
    if not config.temperature_scaling:
        return None, probs
    layer = TemperatureScaling(fit_temperature(probs, val_labels), name="temperature")
    scaled = keras.ops.convert_to_numpy(layer(probs))  # the figures of the layer the model ships with
    metrics = classification_metrics(val_labels, scaled, classes)
    ece = expected_calibration_error(val_labels, scaled)[0]
    mlflow.log_metrics({"temperature": layer.temperature, "val_adjusted_ece": ece,
                        "val_adjusted_balanced_accuracy": metrics["balanced_accuracy"],
                        "val_adjusted_macro_auc": metrics["macro_auc"]})
    log.info("temperature %.3f, val ECE %.4f", layer.temperature, ece)
    return layer, scaled


def train_with_cache(config: TrainConfig, data: pd.DataFrame, classes: tuple[str, ...], cache: FeatureCache | None,
                     history: dict[str, list[float]]) -> tuple[keras.Model, np.ndarray]:
    """Frozen-backbone training from the feature cache; returns the whole classifier and its validation
    probabilities."""
    started = time.perf_counter()
    extractor, train_x, val_x = cached_features(config, data, cache)
    mlflow.set_tag("skinml.feature_seconds", f"{time.perf_counter() - started:.1f}")
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
    positive_group(classes, config.positive_classes)  # a positive class the data lacks: refused before the run
    with stage_run("train", experiment, parent_run_id, name=f"train {config.label()}") as run:
        log_params_once({**config.params(), "data_dir": str(Path(data_dir).resolve())})
        mlflow.log_dict(config.to_dict(), "config.json")  # the whole recipe: what retraining reads back
        mlflow.set_tags({"skinml.backbone_engine": pick_engine() if config.feature_cache else "tensorflow",
                         "skinml.backbone_precision": effective_precision() if config.feature_cache else "f32",
                         "skinml.classes": ",".join(classes), **data.attrs.get("data_tags", {})})
        log_manifest(manifest, data_dir)
        history: dict[str, list[float]] = {}
        if config.feature_cache:
            classifier, val_probs = train_with_cache(config, data, classes, cache, history)
        else:
            classifier, val_probs = train_end_to_end(config, data, classes, history)
        mlflow.log_figure(training_curves(history), "plots/training_curves.png")
        decisions = choose(val_probs, data.loc[data["split"] == "val", "label"].to_numpy(), classes,
                           config.positive_classes, config.target_sensitivities, config.target_balanced_accuracy)
        mlflow.log_metrics(chosen_thresholds(decisions))
        model_info = log_classifier(classifier, classes, decisions)
        train_seconds = time.perf_counter() - started
        final = {name: values[-1] for name, values in history.items()}
        peak_mb = peak_rss_mb()
        mlflow.set_tags({"skinml.train_seconds": f"{train_seconds:.1f}", "skinml.peak_rss_mb": f"{peak_mb:.0f}"})
        result = {"run_id": run.info.run_id, "model_uri": model_info.model_uri,
                  "runs_model_uri": f"runs:/{run.info.run_id}/model", "metrics": final,
                  "train_seconds": train_seconds, "peak_rss_mb": peak_mb, "config": config.params(),
                  "classes": list(classes)}
        dump_json(result, output)
        return result
