"""The MobileNetV2 classifier: a frozen feature extractor (preprocess -> backbone -> pooling) and a small head.

Weights come from `imagenet` (downloaded once into the Keras cache), `none` (random init, for tests) or a path.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import keras
import numpy as np

from skinml import CLASSES

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
# sha256 of the official no-top files, as published with Keras (1.0 and 0.35 checked here; others are not pinned).
KNOWN_WEIGHT_HASHES = {
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5":
        "fa58f6735ab4c948a7d37a54a86feb7cfba859f35dc84c25e6af19a901ecac4a",
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5":
        "a71ec0aea40b2d5d351e0da933c528e6600aa96f683e27503a4ea42e7a7d62bc",
}
FEATURE_EXTRACTOR = "feature_extractor"
HEAD = "head"
PREPROCESSING = "bilinear-resize,rescale[-1,1]"
DESCRIBED_LAYERS = ("image", "preprocess", "pool")  # the extractor's layers that PREPROCESSING and its shapes describe
COLOUR_CONSTANCY_POWER = 6  # Shades of Gray's Minkowski norm; p = 6 is the value used for dermoscopy (Barata 2015)
# Batch for predicting from cached features: a head that starts early in the backbone (at block_1: 112x112 maps) holds
# ~14 MB of activations per image in flight (batch 256 -> 32 took evaluation's peak from 8.0 to 4.8 GB), and larger
# batches are no faster on a CPU.
PREDICT_BATCH_SIZE = 32


class WeightsError(RuntimeError):
    """The requested backbone weights could not be found or downloaded."""


def imagenet_weights_filename(alpha: float) -> str:
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_224_no_top.h5"


def resolve_weights(weights: str, alpha: float = 1.0) -> str | None:
    """The weights file to load for `weights` ('imagenet' | 'none' | path); None means random init.

    'imagenet' downloads the official file once (base URL overridable with SKINML_WEIGHTS_URL) into the Keras cache
    ($KERAS_HOME/models), verifying its sha256; a copy already there is used without any network access.
    """
    if weights == "none":
        return None
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist (use --weights imagenet|none|PATH)")
        return str(path)
    fname = imagenet_weights_filename(alpha)
    base = os.environ.get("SKINML_WEIGHTS_URL", KERAS_WEIGHTS_URL)
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    keras_home.mkdir(parents=True, exist_ok=True)  # else get_file falls back to /tmp/.keras
    try:
        return keras.utils.get_file(fname, origin=base.rstrip("/") + "/" + fname,
                                    file_hash=KNOWN_WEIGHT_HASHES.get(fname), cache_subdir="models",
                                    cache_dir=str(keras_home))
    except Exception as exc:
        raise WeightsError(
            f"could not download the ImageNet MobileNetV2 weights {fname} from {base} ({exc}). Offline? "
            f"Pass the file with --weights PATH, or copy it into ~/.keras/models/ (or $KERAS_HOME/models/)."
        ) from exc


def build_backbone(image_size: int, weights: str = "imagenet", alpha: float = 1.0) -> keras.Model:
    """MobileNetV2 without its top, ImageNet (or given, or random) weights."""
    return keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), include_top=False,
                                          weights=resolve_weights(weights, alpha), alpha=alpha)


def first_layer_of(backbone: keras.Model, block: str) -> keras.layers.Layer:
    """The first layer of a MobileNetV2 block ("block_14", "Conv_1", ...); ValueError names the valid blocks."""
    for layer in backbone.layers:
        if layer.name == block or layer.name.startswith(block + "_"):
            return layer
    blocks = sorted({name.split("_")[1] for name in (l.name for l in backbone.layers) if name.startswith("block_")},
                    key=int)
    raise ValueError(f"fine_tune_from: no block {block!r} in MobileNetV2; use block_1 .. block_{blocks[-1]} or Conv_1")


@keras.saving.register_keras_serializable(package="skinml")
class ShadesOfGray(keras.layers.Layer):
    """Colour constancy (Finlayson & Trezzi, 2004): each image's illuminant is estimated per channel as the
    Minkowski p-norm mean of its pixels, and the channels are scaled so that it becomes grey. A grey image is left
    as it is; a colour cast (one factor per channel) is removed up to one brightness factor. Images in [0, 255].
    """

    def __init__(self, power: int = COLOUR_CONSTANCY_POWER, **kwargs):
        super().__init__(**kwargs)
        self.power = int(power)

    def call(self, images):
        scaled = keras.ops.clip(images, 0.0, 255.0) / 255.0
        illuminant = keras.ops.mean(scaled ** self.power, axis=(1, 2), keepdims=True) ** (1.0 / self.power)
        grey = keras.ops.sqrt(keras.ops.mean(illuminant ** 2, axis=-1, keepdims=True))  # a grey light as strong
        return keras.ops.clip(images * grey / keras.ops.maximum(illuminant, 1e-6), 0.0, 255.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "power": self.power}


def build_feature_extractor(image_size: int, weights: str = "imagenet", alpha: float = 1.0,
                            fine_tune_from: str | None = None, colour_constancy: bool = False) -> keras.Model:
    """The frozen, cacheable part of the classifier, taking float images in [0, 255].

    Without `fine_tune_from`: MobileNetV2 (no top) + global average pooling -> 1280 features. With it: MobileNetV2
    up to (not including) that block -> a feature map, e.g. 7x7x160 before block_14. `colour_constancy` puts
    ShadesOfGray in front of MobileNetV2's own preprocessing.
    """
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = ShadesOfGray(name="colour_constancy")(inputs) if colour_constancy else inputs
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(x)  # MobileNetV2's preprocessing
    backbone = build_backbone(image_size, weights, alpha)
    if fine_tune_from:
        backbone = keras.Model(backbone.input, first_layer_of(backbone, fine_tune_from).input,
                               name=f"{backbone.name}_before_{fine_tune_from}")
    backbone.trainable = False  # frozen, and BatchNorm runs in inference mode
    x = backbone(x, training=False)
    outputs = x if fine_tune_from else keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, outputs, name=FEATURE_EXTRACTOR)
    model.trainable = False
    return model


def build_backbone_top(image_size: int, weights: str, alpha: float, fine_tune_from: str) -> keras.Model:
    """MobileNetV2 from block `fine_tune_from` to its last layer (pretrained), frozen until set_top_trainable."""
    backbone = build_backbone(image_size, weights, alpha)
    top = keras.Model(first_layer_of(backbone, fine_tune_from).input, backbone.output,
                      name=f"{backbone.name}_from_{fine_tune_from}")
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


def build_head(feature_shape: int | tuple[int, ...], dropout: float, seed: int | None = None,
               top: keras.Model | None = None) -> keras.Model:
    """[backbone top -> pooling ->] Dropout -> Dense(7, softmax), on the extractor's features."""
    shape = (feature_shape,) if isinstance(feature_shape, int) else tuple(feature_shape)
    inputs = keras.Input(shape, name="features")
    x = inputs
    if top is not None:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(top(x))
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    init = keras.initializers.GlorotUniform(seed=seed)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", kernel_initializer=init, name="probs")(x)
    return keras.Model(inputs, outputs, name=HEAD)


@keras.saving.register_keras_serializable(package="skinml")
class ProbabilityAdjustment(keras.layers.Layer):
    """softmax((log p + shift) / temperature): prior (logit) adjustment and temperature scaling of probabilities.

    Both are fitted on the validation split after training (skinml.calibration); identity when shift=0, T=1.
    """

    def __init__(self, shift: list[float], temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.shift = [float(v) for v in shift]
        self.temperature = float(temperature)

    def call(self, probs):
        logits = keras.ops.log(keras.ops.clip(probs, 1e-7, 1.0)) + keras.ops.convert_to_tensor(self.shift)
        return keras.ops.softmax(logits / self.temperature, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "shift": self.shift, "temperature": self.temperature}


def drop_training_state(model: keras.Model) -> None:
    """Forget a trained model's optimizer, so that a classifier saved with it holds weights only (no optimizer
    state to skip, with a warning, at every load)."""
    model.optimizer = None
    model.compiled = False


def build_classifier(extractor: keras.Model, head: keras.Model, adjustment: ProbabilityAdjustment | None = None
                     ) -> keras.Model:
    """The whole classifier: image in [0, 255] -> 7 class probabilities (adjusted, when given)."""
    inputs = keras.Input(extractor.input_shape[1:], name="image")
    probs = head(extractor(inputs))
    if adjustment is not None:
        probs = adjustment(probs)
    return keras.Model(inputs, probs, name="skinml_classifier")


def split_classifier(model: keras.Model) -> tuple[keras.Model, keras.Model, ProbabilityAdjustment | None]:
    """The (feature extractor, head, probability adjustment or None) of a classifier built by build_classifier."""
    adjustments = [layer for layer in model.layers if isinstance(layer, ProbabilityAdjustment)]
    return model.get_layer(FEATURE_EXTRACTOR), model.get_layer(HEAD), (adjustments[0] if adjustments else None)


def own_config(layer: keras.layers.Layer) -> dict:
    """A layer's settings beyond those every layer has (name, trainable, dtype)."""
    return {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable", "dtype")}


def extractor_fingerprint(extractor: keras.Model) -> str:
    """sha256 over architecture (and where it is cut), input size, preprocessing and every weight: the feature
    cache's model key."""
    digest = hashlib.sha256()
    backbone = next(layer for layer in extractor.layers if isinstance(layer, keras.Model))
    # Every layer that PREPROCESSING, the backbone and the shapes do not already describe adds its own settings (so
    # the keys of extractors without such layers stay as they were).
    preprocessing = PREPROCESSING + "".join(f",{type(layer).__name__}{json.dumps(own_config(layer), sort_keys=True)}"
                                            for layer in extractor.layers if layer.name not in DESCRIBED_LAYERS
                                            and layer is not backbone)
    digest.update(f"{backbone.name}|{extractor.input_shape}|{extractor.output_shape}|{preprocessing}".encode())
    for weight in extractor.weights:
        digest.update(weight.path.encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()
