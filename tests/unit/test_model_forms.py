"""The model layer's forms: the OpenVINO form of a classifier (skinml.model.openvino_form), its thread-safe pool of
infer requests (skinml.model.infer_pool), and TensorFlow imported quietly (skinml.model.tensorflow_import)."""

import importlib.util
import io
import os
import sys
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from skinml.model import openvino_form
from skinml.model.infer_pool import OV_OPTIMAL_REQUESTS, InferPool
from skinml.model.tensorflow_import import import_tensorflow_quietly, stderr_to_devnull

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
SIZE, CLASSES = 16, 3


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    """A small softmax classifier of 16-px images in [0, 255] (the classifier's input form)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(
        CLASSES, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(stddev=5.0)
    )(x)  # images of different colours get clearly different answers
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino not installed")
    return openvino_form.export(tiny_model, tmp_path_factory.mktemp("ov") / "form")


def images(n: int, height: int = 24, width: int = 20, seed: int = 0) -> np.ndarray:
    """`n` images, each its own colour plus noise."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0, 255, (n, 1, 1, 3))
    return np.clip(colours + rng.normal(0, 10, (n, height, width, 3)), 0, 255).astype(np.uint8)


def keras_answer(model: keras.Model, pixels: np.ndarray) -> np.ndarray:
    """What the Keras model gives for the images resized the way training resizes."""
    return np.array(model(tf.image.resize(pixels, (SIZE, SIZE), method="bilinear"), training=False))


@needs_openvino
def test_the_openvino_form_answers_like_the_keras_model_for_any_image_size(tiny_model, exported):
    assert (exported / openvino_form.FILE_NAME).is_file() and (exported / "classifier.bin").is_file()
    run = openvino_form.load(exported)
    for height, width in ((24, 20), (16, 16), (50, 70)):
        pixels = images(5, height, width)
        answer = run(pixels)
        assert answer.shape == (5, CLASSES)
        np.testing.assert_allclose(answer, keras_answer(tiny_model, pixels), atol=1e-5)
        np.testing.assert_allclose(answer.sum(axis=1), 1.0, rtol=1e-5)


@needs_openvino
def test_the_openvino_form_takes_a_non_contiguous_array(tiny_model, exported):
    pixels = images(4, 24, 20)[::2]  # a strided view
    np.testing.assert_allclose(openvino_form.load(exported)(pixels), keras_answer(tiny_model, pixels), atol=1e-5)


def test_no_openvino_means_no_form(tiny_model, tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "openvino" else find_spec(name, *args)
    )
    assert openvino_form.export(tiny_model, tmp_path / "form") is None
    assert not (tmp_path / "form").exists()


def encoded(pixels: np.ndarray, kind: str) -> bytes:
    data = io.BytesIO()
    Image.fromarray(pixels).save(data, format=kind)
    return data.getvalue()


def test_decode_gives_rgb_pixels_of_png_and_jpeg():
    pixels = images(1, 12, 9)[0]
    np.testing.assert_array_equal(openvino_form.decode(encoded(pixels, "PNG")), pixels)  # lossless
    assert openvino_form.decode(encoded(pixels, "JPEG")).shape == (12, 9, 3)
    grey = io.BytesIO()
    Image.new("L", (5, 4), 77).save(grey, format="PNG")
    decoded = openvino_form.decode(grey.getvalue())
    assert decoded.shape == (4, 5, 3) and decoded.dtype == np.uint8 and (decoded == 77).all()


def test_decode_refuses_bytes_that_are_no_image():
    with pytest.raises((OSError, ValueError)):
        openvino_form.decode(b"not an image")


def test_same_size_runs_group_consecutive_images_of_one_size_up_to_most():
    a, b = np.zeros((4, 4, 3)), np.zeros((5, 4, 3))
    assert openvino_form.same_size_runs([a, a, b, b, b, a], 16) == [[0, 1], [2, 3, 4], [5]]
    assert openvino_form.same_size_runs([a] * 5, 2) == [[0, 1], [2, 3], [4]]
    assert openvino_form.same_size_runs([], 4) == []


@pytest.fixture(scope="module")
def compiled(exported):
    import openvino as ov

    return ov.Core().compile_model(
        str(exported / openvino_form.FILE_NAME),
        "CPU",
        {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"},
    )


@needs_openvino
def test_a_pool_holds_the_compiled_models_optimal_number_of_requests(compiled):
    pool = InferPool(compiled)
    assert pool.size == int(compiled.get_property(OV_OPTIMAL_REQUESTS)) >= 1
    assert InferPool(compiled, size=3).size == 3


@needs_openvino
def test_a_pool_splits_a_batch_over_its_requests_and_keeps_the_order(compiled, tiny_model):
    pool = InferPool(compiled, size=3)
    pixels = images(7, 24, 20, seed=1)
    expected, before = keras_answer(tiny_model, pixels), pixels.copy()
    np.testing.assert_allclose(pool(pixels), expected, atol=1e-5)
    np.testing.assert_array_equal(pixels, before)  # the requests copy the images: the caller's stay as they were
    np.testing.assert_allclose(pool(pixels[:1]), expected[:1], atol=1e-5)  # fewer images than requests
    assert pool._idle.qsize() == 3  # every request back in the pool


@needs_openvino
def test_threads_calling_one_pool_at_once_each_get_their_own_answer(compiled, tiny_model):
    pool = InferPool(compiled, size=2)
    batches = [images(3 + k % 4, 24, 20, seed=k) for k in range(12)]
    expected = [keras_answer(tiny_model, batch) for batch in batches]
    answers, errors = [None] * len(batches), []

    def call(k: int) -> None:
        try:
            for _ in range(5):
                answers[k] = pool(batches[k])
        except Exception as exc:  # e.g. "Infer Request is busy" without the pool
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for answer, want in zip(answers, expected):
        np.testing.assert_allclose(answer, want, atol=1e-5)


@needs_openvino
def test_a_failing_call_raises_and_puts_its_requests_back(compiled):
    pool = InferPool(compiled, size=2)
    with pytest.raises(RuntimeError, match="Can not clone with"):
        pool(np.zeros((2, 24, 20), dtype=np.uint8))  # no colour channel: each request's inference fails
    assert pool._idle.qsize() == 2


class FakeRequest:
    """An infer request as OpenVINO's behaves: busy from start_async until waited for; start_async on a busy
    request raises. The answer is each image's sum; `fail` makes the next wait raise."""

    def __init__(self):
        self.busy, self.fail, self.answer = False, False, None

    def start_async(self, inputs):
        if self.busy:
            raise RuntimeError("Infer Request is busy")
        self.busy, self.answer = True, inputs[0].reshape(len(inputs[0]), -1).sum(axis=1, keepdims=True)

    def wait(self):
        self.busy = False
        if self.fail:
            self.fail = False
            raise RuntimeError("inference failed")

    def get_output_tensor(self, index):
        return type("Tensor", (), {"data": self.answer})


class FakeCompiled:
    def __init__(self):
        self.requests = []

    def get_property(self, name):
        return {OV_OPTIMAL_REQUESTS: 2}[name]

    def create_infer_request(self):
        self.requests.append(FakeRequest())
        return self.requests[-1]


def test_a_pool_of_fake_requests_answers_in_order():
    compiled = FakeCompiled()
    pool = InferPool(compiled)
    assert pool.size == 2 and len(compiled.requests) == 2
    batch = np.arange(5 * 2 * 2 * 3).reshape(5, 2, 2, 3)
    np.testing.assert_array_equal(pool(batch)[:, 0], batch.reshape(5, -1).sum(axis=1))


def test_after_a_failing_call_the_next_call_finds_no_busy_request():
    compiled = FakeCompiled()
    pool = InferPool(compiled)
    compiled.requests[0].fail = True
    with pytest.raises(RuntimeError, match="inference failed"):
        pool(np.zeros((2, 2, 2, 3)))
    assert pool(np.ones((2, 2, 2, 3)))[:, 0].tolist() == [12, 12]


def test_stderr_to_devnull_discards_what_the_c_level_writes_and_restores_it(capfd):
    os.write(2, b"before\n")
    with stderr_to_devnull():
        os.write(2, b"hidden\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before\nafter\n"


def test_stderr_comes_back_when_the_body_raises(capfd):
    with pytest.raises(RuntimeError, match="boom"):
        with stderr_to_devnull():
            raise RuntimeError("boom")
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"


def test_tensorflow_is_imported_with_its_log_level_set_unless_given(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    import_tensorflow_quietly()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and "tensorflow" in sys.modules
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    import_tensorflow_quietly()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


def test_a_failing_import_still_raises_and_stderr_is_back(monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # the import fails
    with pytest.raises(ImportError, match="tensorflow"):
        import_tensorflow_quietly()
    os.write(2, b"visible\n")
    assert capfd.readouterr().err == "visible\n"
