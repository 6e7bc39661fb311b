"""The MobileNetV2 classifier: a frozen feature extractor (preprocess -> backbone [-> pooling]) and a head
([backbone top -> pooling ->] Dropout -> Dense(n classes, softmax)), joined with an optional temperature layer."""

from __future__ import annotations

import keras

from skinml.core.errors import OptionError
from skinml.model.weights import WeightsError, resolve_weights

FEATURE_EXTRACTOR = "feature_extractor"
HEAD = "head"
# Batch for predicting from cached features: a head that starts early in the backbone holds large activations per
# image in flight (docs/benchmarks.md), and larger batches are no faster on a CPU.
PREDICT_BATCH_SIZE = 32


def build_backbone(image_size: int, weights: str = "imagenet", alpha: float = 1.0) -> keras.Model:
    """MobileNetV2 without its top, ImageNet (or given, or random) weights. A file that is not HDF5 or holds the
    weights of another network is a WeightsError naming it."""
    path = resolve_weights(weights, alpha)
    backbone = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3), include_top=False, weights=None, alpha=alpha
    )
    if path:
        try:
            backbone.load_weights(path)
        except (OSError, ValueError) as exc:  # h5py: not an HDF5 file; Keras: layers or shapes that do not match
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise WeightsError(
                f"weights file {path} is not MobileNetV2 (alpha {alpha}, no top) weights: {reason}"
            ) from exc
    return backbone


def first_layer_of(backbone: keras.Model, block: str) -> keras.layers.Layer:
    """The first layer of a MobileNetV2 block ("block_14", "Conv_1", ...); ValueError names the valid blocks."""
    for layer in backbone.layers:
        if layer.name == block or layer.name.startswith(block + "_"):
            return layer
    names = [each.name for each in backbone.layers]
    blocks = sorted({name.split("_")[1] for name in names if name.startswith("block_")}, key=int)
    raise OptionError(f"fine_tune_from: no block {block!r} in MobileNetV2; use block_1 .. block_{blocks[-1]} or Conv_1")


def build_feature_extractor(
    image_size: int, weights: str = "imagenet", alpha: float = 1.0, fine_tune_from: str | None = None
) -> keras.Model:
    """The frozen, cacheable part of the classifier, taking float images in [0, 255].

    Without `fine_tune_from`: MobileNetV2 (no top) + global average pooling -> 1280 features. With it: MobileNetV2
    up to (not including) that block -> a feature map, e.g. 7x7x160 before block_14.
    """
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(inputs)  # MobileNetV2's preprocessing
    backbone = build_backbone(image_size, weights, alpha)
    if fine_tune_from:
        backbone = keras.Model(
            backbone.input,
            first_layer_of(backbone, fine_tune_from).input,
            name=f"{backbone.name}_before_{fine_tune_from}",
        )
    backbone.trainable = False  # frozen, and BatchNorm runs in inference mode
    x = backbone(x, training=False)
    outputs = x if fine_tune_from else keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, outputs, name=FEATURE_EXTRACTOR)
    model.trainable = False
    return model


def build_backbone_top(image_size: int, weights: str, alpha: float, fine_tune_from: str) -> keras.Model:
    """MobileNetV2 from block `fine_tune_from` to its last layer (pretrained), frozen until set_top_trainable."""
    backbone = build_backbone(image_size, weights, alpha)
    top = keras.Model(
        first_layer_of(backbone, fine_tune_from).input, backbone.output, name=f"{backbone.name}_from_{fine_tune_from}"
    )
    top.trainable = False
    return top


def set_top_trainable(head: keras.Model, trainable: bool) -> None:
    """Unfreeze (or freeze) the backbone top inside a head; its BatchNorm layers always stay in inference mode."""
    for layer in head.layers:
        if isinstance(layer, keras.Model):
            layer.trainable = trainable
            for sub in layer.layers:
                if isinstance(sub, keras.layers.BatchNormalization):
                    sub.trainable = False  # Keras 3: a non-trainable BatchNorm also runs in inference mode


def build_head(
    feature_shape: int | tuple[int, ...],
    n_classes: int,
    dropout: float,
    seed: int | None = None,
    *,
    top: keras.Model | None = None,
) -> keras.Model:
    """[backbone top -> pooling ->] Dropout -> Dense(n_classes, softmax), on the extractor's features."""
    shape = (feature_shape,) if isinstance(feature_shape, int) else tuple(feature_shape)
    inputs = keras.Input(shape, name="features")
    x = inputs
    if top is not None:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(top(x))
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    init = keras.initializers.GlorotUniform(seed=seed)
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_initializer=init, name="probs")(x)
    return keras.Model(inputs, outputs, name=HEAD)


@keras.saving.register_keras_serializable(package="skinml")
class TemperatureScaling(keras.layers.Layer):
    """softmax(log p / temperature): calibrated probabilities (Guo et al., 2017); never changes the predicted class.

    The temperature is fitted on the validation split after training (skinml.model.calibration).
    """

    def __init__(self, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, probs):
        return keras.ops.softmax(keras.ops.log(keras.ops.clip(probs, 1e-7, 1.0)) / self.temperature, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}


def drop_training_state(model: keras.Model) -> None:
    """Forget a trained model's optimizer, so that a classifier saved with it holds weights only (no optimizer
    state to skip, with a warning, at every load)."""
    model.optimizer = None
    model.compiled = False


def build_classifier(
    extractor: keras.Model, head: keras.Model, temperature: TemperatureScaling | None = None
) -> keras.Model:
    """The whole classifier: image in [0, 255] -> the class probabilities (temperature-scaled, when given)."""
    inputs = keras.Input(extractor.input_shape[1:], name="image")
    probs = head(extractor(inputs))
    if temperature is not None:
        probs = temperature(probs)
    return keras.Model(inputs, probs, name="skinml_classifier")


def split_classifier(model: keras.Model) -> tuple[keras.Model, keras.Model, TemperatureScaling | None]:
    """The (feature extractor, head, temperature layer or None) of a classifier built by build_classifier."""
    scaling = [layer for layer in model.layers if isinstance(layer, TemperatureScaling)]
    return model.get_layer(FEATURE_EXTRACTOR), model.get_layer(HEAD), (scaling[0] if scaling else None)


def head_with_representation(head: keras.Model) -> keras.Model:
    """The head with two outputs, computed once: its probabilities and its representation of the image, what its
    last layer reads (the pooled features before Dropout -> Dense; skinml.evaluation.familiarity)."""
    return keras.Model(head.inputs, [head.outputs[0], head.get_layer("dropout").input], name="head_and_representation")


def scoring_model(classifier: keras.Model) -> keras.Model:
    """The classifier answering [probabilities | representation] in one output (n, classes + d): what the served
    model runs when it scores familiarity (one output keeps the OpenVINO form and the engines as they are)."""
    extractor, head, temperature = split_classifier(classifier)
    inputs = keras.Input(classifier.input_shape[1:], name="image")
    probs, representation = head_with_representation(head)(extractor(inputs))
    if temperature is not None:
        probs = temperature(probs)
    scores = keras.layers.Concatenate(name="scores")([probs, representation])
    return keras.Model(inputs, scores, name="skinml_scoring")
