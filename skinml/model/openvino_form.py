"""The whole classifier in OpenVINO's form, logged with the model, so that `skinml predict` and `mlflow models serve`
answer without TensorFlow: no TensorFlow import and no conversion at start-up (docs/benchmarks.md: start-up).

The form takes decoded images of any size (uint8, N x H x W x 3) and resizes them itself with the bilinear resize
training uses; images are decoded with Pillow, which gives the pixels training's decoder gives (skinml.data.loader).
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from skinml.core import settings
from skinml.model.infer_pool import InferPool

FILE_NAME = "classifier.xml"  # with classifier.bin beside it


def export(model, folder: str | Path) -> Path | None:
    """Save the Keras classifier, behind its input resize, as OpenVINO IR in `folder`; None when OpenVINO is not
    installed (the model then runs on TensorFlow)."""
    if importlib.util.find_spec("openvino") is None:
        return None
    # lazy: OpenVINO is optional; TensorFlow is needed to export only (loading and running the form never need it)
    import openvino as ov
    import tensorflow as tf

    size = int(model.input_shape[1])

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def classify(images):
        return model(tf.image.resize(images, (size, size), method="bilinear"), training=False)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(classify.get_concrete_function()), folder / FILE_NAME, compress_to_fp16=False)
    return folder


def load(folder: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """The compiled form: uint8 images (N x H x W x 3, one size per call) -> class probabilities (N x classes), from
    any number of threads at once (skinml.model.infer_pool). It runs
    at f32 unless $SKINML_PRECISION asks for bf16 and the CPU computes it natively (as skinml.model.engine decides; that
    module needs TensorFlow, this one must not)."""
    # lazy: OpenVINO is optional
    import openvino as ov

    core = ov.Core()
    native_bf16 = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    precision = "bf16" if settings.choice("SKINML_PRECISION") == "bf16" and native_bf16 else "f32"
    # THROUGHPUT: as many streams as the cores serve best, one infer request each, so that the server's threads
    # run requests side by side (docs/benchmarks.md, serving under load: 4 and 16 clients get 1.6x the answers/s
    # of LATENCY's single stream, one client 5 ms more).
    compiled = core.compile_model(
        str(Path(folder) / FILE_NAME), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": precision}
    )
    pool = InferPool(compiled)
    return lambda images: pool(np.ascontiguousarray(images, dtype=np.uint8))


def decode(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 RGB pixels (H x W x 3); OSError/ValueError when they do not decode."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def same_size_runs(pixels: list[np.ndarray], most: int) -> list[list[int]]:
    """Indices of consecutive images of one size, at most `most` per run: each run is one call of the model."""
    runs: list[list[int]] = []
    for index, image in enumerate(pixels):
        if runs and len(runs[-1]) < most and pixels[runs[-1][0]].shape == image.shape:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs
