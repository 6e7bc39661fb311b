"""Training the classifier's head on cached backbone features: validation figures at every epoch (EpochMetrics, also
the plain Keras path's), one augmented view per image per epoch, and with `fine_tune_from` the backbone's top warmed
up frozen on its pooled output, then fine-tuned with a rising-then-cosine learning rate."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from skinml.core.names import TRAIN, VAL, metric_name
from skinml.core.recipe import TrainConfig
from skinml.evaluation.metrics import classification_metrics
from skinml.features.batches import PredictionBatches, RowFile, Rows, TrainingBatches, keras_fit_order, read_rows
from skinml.model.calibration import logit_adjusted_crossentropy
from skinml.model.engine import predictor
from skinml.model.network import PREDICT_BATCH_SIZE, build_backbone_top, build_head, set_top_trainable

log = logging.getLogger("skinml.train")  # the epoch lines keep the logger users know
LearningRate = float | keras.optimizers.schedules.LearningRateSchedule
EpochReport = Callable[[int, dict[str, float]], None]  # given the epoch (from 1) and its figures: e.g. log them


class EpochMetrics(keras.callbacks.Callback):
    """Validation loss/accuracy/balanced accuracy at each epoch end, with the train metrics: kept in `history`,
    printed, and given to `on_epoch` (the stage's run logs them there).

    `val_inputs`: a batched dataset of images, or features (n, 1, ...): cached (Rows) or an array.
    """

    def __init__(
        self,
        val_inputs,
        val_labels: np.ndarray,
        classes: tuple[str, ...],
        history: dict[str, list[float]],
        *,
        predictor: keras.Model | None = None,
        on_epoch: EpochReport | None = None,
        stop_when: Callable[[int, dict], bool] | None = None,
    ):
        super().__init__()
        self.val_inputs, self.val_labels, self.classes, self.history = val_inputs, val_labels, classes, history
        self.predictor = predictor  # what to validate, when not the model being fitted (e.g. without augmentation)
        self.on_epoch = on_epoch
        self.stop_when = stop_when  # given the epoch and its metrics, whether to stop (a sweep's pruner)
        self.probs: np.ndarray | None = None  # the last epoch's validation probabilities

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        inputs = self.val_inputs
        if isinstance(inputs, np.ndarray) or hasattr(inputs, "read"):
            inputs = PredictionBatches(inputs, PREDICT_BATCH_SIZE)
        probs = np.asarray((self.predictor or self.model).predict(inputs, verbose=0))
        self.probs = probs
        picked = np.clip(probs[np.arange(len(probs)), self.val_labels], 1e-7, 1.0)
        scored = classification_metrics(self.val_labels, probs, self.classes)
        # on the training batches, as Keras computes them
        train_recalls = [logs[f"recall_{k}"] for k in range(len(self.classes))]
        train = {"loss": logs["loss"], "accuracy": logs["accuracy"], "balanced_accuracy": np.mean(train_recalls)}
        val = {"loss": -np.log(picked).mean(), **{k: scored[k] for k in ("accuracy", "balanced_accuracy", "macro_auc")}}
        metrics = {
            metric_name(split, k): float(v)
            for split, figures in ((TRAIN, train), (VAL, val))
            for k, v in figures.items()
        }
        for name, value in metrics.items():
            self.history.setdefault(name, []).append(float(value))
        if self.on_epoch:
            self.on_epoch(epoch + 1, metrics)
        log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if self.stop_when and self.stop_when(epoch, metrics):
            self.model.stop_training = True


def compile_for_training(
    model: keras.Model,
    config: TrainConfig,
    train_labels: np.ndarray,
    n_classes: int,
    *,
    learning_rate: LearningRate | None = None,
) -> None:
    """Compile with the recipe's loss and optimizer, and a recall metric per class (`recall_<k>`)."""
    loss = (
        logit_adjusted_crossentropy(train_labels, n_classes)
        if config.loss == "logit_adjusted"
        else keras.losses.CategoricalCrossentropy()
    )
    per_class_recall = [
        keras.metrics.Recall(top_k=1, class_id=k, name=f"recall_{k}") for k in range(n_classes)
    ]  # their mean is the balanced accuracy
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate or config.learning_rate),
        loss=loss,
        metrics=["accuracy", *per_class_recall],
    )


def fit_head_on_features(
    head: keras.Model,
    train_views: Rows | np.ndarray,
    train_labels: np.ndarray,
    config: TrainConfig,
    callbacks: list[keras.callbacks.Callback],
    *,
    epochs: int | None = None,
    first_epoch: int = 0,
    learning_rate: LearningRate | None = None,
) -> None:
    """Train the head on cached features; every epoch draws one view per image (train_views: (n, views, ...)) and
    reads the batches from disk in the order Keras gives arrays in memory.

    Epochs are numbered from `first_epoch` (a fine-tuning phase continues the warm-up's numbering).
    """
    compile_for_training(head, config, train_labels, int(head.output_shape[-1]), learning_rate=learning_rate)
    rng = np.random.default_rng(config.seed + first_epoch)
    targets = keras.utils.to_categorical(train_labels, int(head.output_shape[-1]))
    n, n_views = train_views.shape[:2]
    for epoch in range(first_epoch, first_epoch + (config.epochs if epochs is None else epochs)):
        batches = TrainingBatches(
            train_views, targets, rng.integers(n_views, size=n), keras_fit_order(n), config.batch_size
        )
        head.fit(batches, shuffle=False, epochs=epoch + 1, initial_epoch=epoch, verbose=0, callbacks=callbacks)
        if head.stop_training:
            break


def build_top(config: TrainConfig) -> keras.Model | None:
    """The backbone from block `fine_tune_from` on, frozen until fine-tuning; None when the whole backbone is frozen."""
    if not config.fine_tune_from:
        return None
    return build_backbone_top(config.image_size, config.weights, config.alpha, config.fine_tune_from)


def train_head(
    config: TrainConfig,
    train_x: Rows | np.ndarray,
    train_labels: np.ndarray,
    val_x: Rows | np.ndarray,
    val_labels: np.ndarray,
    classes: tuple[str, ...],
    history: dict[str, list[float]],
    *,
    on_epoch: EpochReport | None = None,
    stop_when: Callable[[int, dict], bool] | None = None,
) -> tuple[keras.Model, np.ndarray]:
    """A new head trained on features (train_x: (n, views, ...); val_x: (n, 1, ...)), validated at every epoch (its
    figures given to `on_epoch`); returns it with its validation probabilities.

    With `fine_tune_from`, the head holds the backbone's top: `epochs` with it frozen (trained on the top's pooled
    output, computed once per view), then `fine_tune_epochs` with it trainable, the learning rate rising to
    `fine_tune_learning_rate` over one epoch, then decaying to 0 (cosine).
    """
    top = build_top(config)
    head = build_head(train_x.shape[2:], len(classes), config.dropout, config.seed, top=top)
    validation = EpochMetrics(val_x, val_labels, classes, history, on_epoch=on_epoch, stop_when=stop_when)
    if top is None:
        fit_head_on_features(head, train_x, train_labels, config, [validation])
        return head, validation.probs
    warm_up = warm_up_head(head)  # the frozen top's pooled output is computed once, not once per epoch
    with tempfile.TemporaryDirectory(prefix="skinml-pooled-") as scratch:
        pooled_train = pooled_top_features(top, train_x, Path(scratch) / "train.f32")
        validation.val_inputs = pooled_top_features(top, val_x, Path(scratch) / "val.f32")
        fit_head_on_features(warm_up, pooled_train, train_labels, config, [validation])
        pooled_train.close()
        validation.val_inputs.close()
    validation.val_inputs = val_x
    if config.fine_tune_epochs and not warm_up.stop_training:
        set_top_trainable(head, True)
        fit_head_on_features(
            head,
            train_x,
            train_labels,
            config,
            [validation],
            epochs=config.fine_tune_epochs,
            first_epoch=config.epochs,
            learning_rate=fine_tune_schedule(config, train_x.shape[0]),
        )
        set_top_trainable(head, False)  # saved frozen: nothing trains it further by accident
    return head, validation.probs


def pooled_top_features(top: keras.Model, maps: Rows | np.ndarray, path: Path, batch_size: int = 64) -> RowFile:
    """The frozen backbone top's pooled output for every map of `maps` (n, views, *map_shape), written to `path` as
    rows (n, views, pooled); run where the extractor runs (skinml.model.engine: OpenVINO on a CPU, ~3x TensorFlow's
    speed here)."""
    inputs = keras.Input(maps.shape[2:], name="features")
    pooled = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(top(inputs)), name="top_pooled")
    run = predictor(pooled)
    n, n_views = maps.shape[:2]
    out = RowFile(path, (n, n_views, int(pooled.output_shape[-1])))
    rows, views = np.divmod(np.arange(n * n_views), n_views)
    for start in range(0, n * n_views, batch_size):
        out.append(run(read_rows(maps, rows[start : start + batch_size], views[start : start + batch_size])))
    return out


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
        0.0,
        decay_steps=max(1, config.fine_tune_epochs - 1) * steps_per_epoch,
        warmup_target=config.fine_tune_learning_rate,
        warmup_steps=steps_per_epoch,
    )
