"""Where the frozen backbone runs: OpenVINO on a CPU, TensorFlow on a GPU (or when asked).

On a CPU OpenVINO runs MobileNetV2 several times faster than TensorFlow (docs/benchmarks.md) and gives the same
features to within 1e-4. `auto` picks TensorFlow whenever TensorFlow sees a GPU, else OpenVINO
when it is installed. $SKINML_ENGINE (or the `engine` argument) forces one: auto | openvino | tensorflow.

Precision: OpenVINO's own default on a CPU with native bfloat16 (AVX-512 BF16 or AMX) is to compute in bf16, which
changes the features (cosine ~0.99 to fp32). We ask for fp32 unless $SKINML_PRECISION (or the `precision` argument)
is bf16, so that features, cache entries and served probabilities are the same on every machine by default. The
precision a predictor really ran at (`effective_precision`) is part of the feature-cache key.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
import weakref
from collections.abc import Callable

import keras
import numpy as np

from skinml.core import settings
from skinml.core.errors import OptionError
from skinml.model.infer_pool import InferPool

ENGINE_ENV, PRECISION_ENV = "SKINML_ENGINE", "SKINML_PRECISION"
Predictor = Callable[[np.ndarray], np.ndarray]

# model -> {precision: its OpenVINO predictor}
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def has_gpu() -> bool:
    # lazy: TensorFlow and OpenVINO (optional) load when an engine is used
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def pick_engine(requested: str | None = None) -> str:
    """The engine to use: `requested`, else $SKINML_ENGINE, else auto (GPU -> tensorflow, CPU -> openvino)."""
    requested = settings.choice(ENGINE_ENV, requested)
    has_openvino = importlib.util.find_spec("openvino") is not None
    if requested == "openvino" and not has_openvino:
        raise OptionError(
            "engine 'openvino' was asked for but the openvino package is not installed "
            "(pip install openvino, or use engine tensorflow)"
        )
    if requested != "auto":
        return requested
    return "openvino" if has_openvino and not has_gpu() else "tensorflow"


def effective_precision(engine: str | None = None, precision: str | None = None) -> str:
    """The precision the backbone will really run at: `precision`, else $SKINML_PRECISION, else f32; bf16 only on
    OpenVINO with a CPU that computes bf16 natively (elsewhere it falls back to f32, with a warning)."""
    precision = settings.choice(PRECISION_ENV, precision)
    if precision == "bf16" and not (pick_engine(engine) == "openvino" and cpu_has_bf16()):
        warnings.warn(
            "bf16 was asked for, but only OpenVINO on a CPU with native bfloat16 (AVX-512 BF16 or AMX) "
            "runs it; the backbone runs in f32",
            stacklevel=2,
        )
        return "f32"
    return precision


@functools.cache  # the CPU does not change while we run; asking OpenVINO costs a Core each time
def cpu_has_bf16() -> bool:
    """Whether OpenVINO sees native bfloat16 on this CPU (AVX-512 BF16 or AMX)."""
    # lazy: TensorFlow and OpenVINO (optional) load when an engine is used
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def predictor(model: keras.Model, engine: str | None = None, precision: str | None = None) -> Predictor:
    """A function: batch of inputs (numpy) -> the model's output in inference mode, run on the chosen engine at the
    chosen precision (see effective_precision).

    The OpenVINO form is compiled once per model object and precision (a few seconds) and reused.
    """
    if pick_engine(engine) == "tensorflow":
        return lambda batch: np.asarray(model.predict_on_batch(batch))
    precision = effective_precision("openvino", precision)
    by_precision = _compiled.setdefault(model, {})
    if precision not in by_precision:
        by_precision[precision] = openvino_predictor(openvino_model(model), precision)
    return by_precision[precision]


def openvino_model(model: keras.Model):
    """The Keras model converted to an OpenVINO model (any batch size)."""
    # lazy: TensorFlow and OpenVINO (optional) load when an engine is used
    import openvino as ov

    with warnings.catch_warnings():  # Keras warns that the traced input is a tuple, not its named input
        warnings.simplefilter("ignore", UserWarning)
        return ov.convert_model(model, input=[[-1, *model.input_shape[1:]]])


def openvino_predictor(converted, precision: str = "f32") -> Predictor:
    """A predictor running an OpenVINO model on the CPU at `precision` (f32 | bf16)."""
    # lazy: TensorFlow and OpenVINO (optional) load when an engine is used
    import openvino as ov

    # LATENCY: one stream over all cores; measured faster than THROUGHPUT for our batch sizes.
    # The precision is always set: left out, OpenVINO picks bf16 by itself on CPUs that have it.
    compiled = ov.Core().compile_model(
        converted, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    )
    pool = InferPool(compiled)  # one request under LATENCY: callers from several threads take turns
    return lambda batch: pool(np.ascontiguousarray(batch, dtype=np.float32))
