"""Where the frozen backbone runs: OpenVINO on a CPU, TensorFlow on a GPU (or when asked).

On our 2-core AVX2 machine OpenVINO runs MobileNetV2 about 3x faster than TensorFlow (docs/benchmarks.md) and gives
the same features to within 1e-4. `auto` picks TensorFlow whenever TensorFlow sees a GPU, else OpenVINO when it is
installed. $SKINML_ENGINE (or the `engine` argument) forces one: auto | openvino | tensorflow.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
import weakref
from collections.abc import Callable

import keras
import numpy as np

ENGINES = ("auto", "openvino", "tensorflow")
ENGINE_ENV = "SKINML_ENGINE"
Predictor = Callable[[np.ndarray], np.ndarray]

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its OpenVINO predictor


def has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def pick_engine(requested: str | None = None) -> str:
    """The engine to use: `requested`, else $SKINML_ENGINE, else auto (GPU -> tensorflow, CPU -> openvino)."""
    requested = requested or os.environ.get(ENGINE_ENV) or "auto"
    if requested not in ENGINES:
        raise ValueError(f"engine {requested!r} (from the engine option or ${ENGINE_ENV}) is unknown; "
                         f"use one of {', '.join(ENGINES)}")
    has_openvino = importlib.util.find_spec("openvino") is not None
    if requested == "openvino" and not has_openvino:
        raise RuntimeError("engine 'openvino' was asked for but the openvino package is not installed "
                           "(pip install openvino, or use engine tensorflow)")
    if requested != "auto":
        return requested
    return "openvino" if has_openvino and not has_gpu() else "tensorflow"


def predictor(model: keras.Model, engine: str | None = None) -> Predictor:
    """A function: batch of inputs (numpy) -> the model's output in inference mode, run on the chosen engine.

    The OpenVINO form is compiled once per model object (a few seconds) and reused.
    """
    if pick_engine(engine) == "tensorflow":
        return lambda batch: np.asarray(model.predict_on_batch(batch))
    if model not in _compiled:
        _compiled[model] = openvino_predictor(openvino_model(model))
    return _compiled[model]


def openvino_model(model: keras.Model):
    """The Keras model converted to an OpenVINO model (any batch size)."""
    import openvino as ov

    with warnings.catch_warnings():  # Keras warns that the traced input is a tuple, not its named input
        warnings.simplefilter("ignore", UserWarning)
        return ov.convert_model(model, input=[[-1, *model.input_shape[1:]]])


def openvino_predictor(converted) -> Predictor:
    """A predictor running an OpenVINO model on the CPU."""
    import openvino as ov

    # LATENCY: one stream over all cores; measured faster than THROUGHPUT for our batch sizes.
    compiled = ov.Core().compile_model(converted, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    return lambda batch: compiled(np.ascontiguousarray(batch, dtype=np.float32))[0]
