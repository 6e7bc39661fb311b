"""The MobileNetV2 classifier: a frozen feature extractor (preprocess -> backbone -> pooling) and a small head.

Weights come from `imagenet` (downloaded once into the Keras cache), `none` (random init, for tests) or a path.
"""

from __future__ import annotations

import hashlib
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


def build_feature_extractor(image_size: int, weights: str = "imagenet", alpha: float = 1.0) -> keras.Model:
    """Frozen MobileNetV2 (no top) + global average pooling, taking float images in [0, 255]."""
    weights_file = resolve_weights(weights, alpha)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(inputs)  # MobileNetV2's preprocessing
    backbone = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), include_top=False,
                                              weights=weights_file, alpha=alpha)
    backbone.trainable = False  # frozen, and BatchNorm runs in inference mode
    x = backbone(x, training=False)
    outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, outputs, name=FEATURE_EXTRACTOR)
    model.trainable = False
    return model


def build_head(feature_dim: int, dropout: float, seed: int | None = None) -> keras.Model:
    """Dropout -> Dense(7, softmax) on pooled features."""
    inputs = keras.Input((feature_dim,), name="features")
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(inputs)
    init = keras.initializers.GlorotUniform(seed=seed)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", kernel_initializer=init, name="probs")(x)
    return keras.Model(inputs, outputs, name=HEAD)


def build_classifier(extractor: keras.Model, head: keras.Model) -> keras.Model:
    """The whole classifier: image in [0, 255] -> 7 class probabilities."""
    inputs = keras.Input(extractor.input_shape[1:], name="image")
    return keras.Model(inputs, head(extractor(inputs)), name="skinml_classifier")


def split_classifier(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """The (feature extractor, head) of a classifier built by build_classifier."""
    return model.get_layer(FEATURE_EXTRACTOR), model.get_layer(HEAD)


def extractor_fingerprint(extractor: keras.Model) -> str:
    """sha256 over architecture, input size, preprocessing and every weight: the feature cache's model key."""
    digest = hashlib.sha256()
    backbone = next(layer for layer in extractor.layers if isinstance(layer, keras.Model))
    digest.update(f"{backbone.name}|{extractor.input_shape}|{extractor.output_shape}|{PREPROCESSING}".encode())
    for weight in extractor.weights:
        digest.update(weight.path.encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()
