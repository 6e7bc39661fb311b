"""Where MobileNetV2's weights come from: `imagenet` (the official Keras file, downloaded once and verified),
`none` (random init, for tests) or a path to a weights file."""

from __future__ import annotations

import os
from pathlib import Path

from skinml.core import settings
from skinml.core.errors import UserError

# sha256 of the official no-top files, as published with Keras (1.0 and 0.35 checked here; others are not pinned).
WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_224_no_top.h5"
KNOWN_WEIGHT_HASHES = {
    WEIGHTS_FILE.format(alpha="1.0"): "fa58f6735ab4c948a7d37a54a86feb7cfba859f35dc84c25e6af19a901ecac4a",
    WEIGHTS_FILE.format(alpha="0.35"): "a71ec0aea40b2d5d351e0da933c528e6600aa96f683e27503a4ea42e7a7d62bc",
}


class WeightsError(UserError, RuntimeError):
    """The requested backbone weights could not be found or downloaded."""


def imagenet_weights_filename(alpha: float) -> str:
    return WEIGHTS_FILE.format(alpha=alpha)


def resolve_weights(weights: str, alpha: float = 1.0) -> str | None:
    """The weights file to load for `weights` ('imagenet' | 'none' | path); None means random init.

    'imagenet' downloads the official file once (base URL overridable with SKINML_WEIGHTS_URL) into the Keras cache
    ($KERAS_HOME/models), verifying its sha256; a copy already there is used without any network access.
    """
    if weights == "none":
        return None
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if path.is_dir():
            raise WeightsError(f"weights {path} is a folder, not a weights file (use --weights imagenet|none|PATH)")
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist (use --weights imagenet|none|PATH)")
        return str(path)
    fname = imagenet_weights_filename(alpha)
    base = settings.raw("SKINML_WEIGHTS_URL")
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    keras_home.mkdir(parents=True, exist_ok=True)  # else get_file falls back to /tmp/.keras
    import keras  # lazy: Keras (and TensorFlow) load only when the ImageNet weights are fetched

    try:
        return keras.utils.get_file(
            fname,
            origin=base.rstrip("/") + "/" + fname,
            file_hash=KNOWN_WEIGHT_HASHES.get(fname),
            cache_subdir="models",
            cache_dir=str(keras_home),
        )
    except Exception as exc:
        raise WeightsError(
            f"could not download the ImageNet MobileNetV2 weights {fname} from {base} ({exc}). Offline? "
            f"Pass the file with --weights PATH, or copy it into ~/.keras/models/ (or $KERAS_HOME/models/)."
        ) from exc
