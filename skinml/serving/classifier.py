"""The MLflow pyfunc model that takes images: a DataFrame column `image` of base64 JPEG/PNG (or raw bytes) in,
a probability per class of the model (columns named by class) and the predicted `label` out. Resizing and
preprocessing live inside. How models are logged and loaded: skinml.tracking.model_store."""

from __future__ import annotations

import base64
import binascii
import functools
import importlib.util
import io
import json
import logging
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc.scoring_server import _SERVER_MODEL_PATH
from PIL import Image, UnidentifiedImageError

from skinml.core import settings
from skinml.core.labels import LEGACY_CLASSES
from skinml.evaluation.familiarity import Familiarity
from skinml.model import openvino_form
from skinml.serving.integrity import check_served_copy, files_stamp
from skinml.serving.request_form import (
    IMAGE_COLUMN,
    InvalidImageError,
    ModelFailure,
    RequestTooLargeError,
    ServingError,
    image_values,
)

MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)
# Request bounds (skinml.core.settings), sized for a 2-core, 24 GB server; the environment of `mlflow models serve` may
# change them. The rows and request bytes bound an HTTP request (in_http_server); the image bytes bound every image.
MAX_ROWS_VARIABLE = "SKINML_SERVE_MAX_ROWS"
MAX_BYTES_VARIABLE = "SKINML_SERVE_MAX_IMAGE_BYTES"
MAX_REQUEST_VARIABLE = "SKINML_SERVE_MAX_REQUEST_BYTES"  # all images, base64
CHUNK_ROWS = 16  # images decoded and run together: memory does not grow with the request
BATCH_ROWS = 256  # rows of a batch call (spark_udf, pyfunc.predict) whose base64 is decoded at a time


def serving_engine() -> str:
    """How a loaded model runs: its OpenVINO form when OpenVINO is installed, unless $SKINML_ENGINE is
    `tensorflow` (set it on a host with a GPU: telling needs TensorFlow, which this choice avoids importing)."""
    requested = settings.choice("SKINML_ENGINE")
    if requested == "tensorflow" or importlib.util.find_spec("openvino") is None:
        return "tensorflow"
    return "openvino"


def in_http_server() -> bool:
    """Whether this process is MLflow's HTTP scoring server (`mlflow models serve`, or the one spark_udf starts on
    an executor for an env_manager other than local): the server finds its model through this variable. A batch call
    in any other process (spark_udf in the Python worker, pyfunc.predict, `mlflow models predict`) has no request
    limits: it is scored BATCH_ROWS rows at a time."""
    return _SERVER_MODEL_PATH in os.environ


def check_request_size(values: list) -> None:
    """Refuse a request with more rows or more image text than the server's limits, before any image is decoded."""
    max_rows = settings.positive_int(MAX_ROWS_VARIABLE)
    if len(values) > max_rows:
        raise RequestTooLargeError(
            f"{len(values)} images in one request; the limit is {max_rows} ({MAX_ROWS_VARIABLE})"
        )
    size = sum(len(value) for value in values if isinstance(value, (str, bytes, bytearray)))
    max_size = settings.positive_int(MAX_REQUEST_VARIABLE)
    if size > max_size:
        raise RequestTooLargeError(
            f"{size} bytes of images in one request; the limit is {max_size} ({MAX_REQUEST_VARIABLE})"
        )


def image_bytes(value: object, where: str) -> bytes:
    """The raw image bytes of one request value (base64 text or bytes), checked to be a decodable-size image;
    `where` names it in errors ("row 3", a file name)."""
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, str):
        max_bytes = settings.positive_int(MAX_BYTES_VARIABLE)
        if len(value) * 3 // 4 > max_bytes:  # refused before decoding the base64
            raise RequestTooLargeError(
                f"{where}: image of about {len(value) * 3 // 4} bytes is over the limit of "
                f"{max_bytes} bytes ({MAX_BYTES_VARIABLE})"
            )
        try:  # whitespace (MIME base64's line breaks: Spark's base64()) is not part of the image
            data = base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImageError(f"{where}: '{IMAGE_COLUMN}' is not valid base64") from None
    elif value is None or (isinstance(value, float) and np.isnan(value)):  # a null of Spark or pandas
        raise InvalidImageError(f"{where}: no image (null)")
    else:
        raise InvalidImageError(f"{where}: '{IMAGE_COLUMN}' must be base64 text, got {type(value).__name__}")
    if not data:
        raise InvalidImageError(f"{where}: '{IMAGE_COLUMN}' is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            kind = image.format
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours, checked as it reads the header
        raise InvalidImageError(f"{where}: image is too large (limit {MAX_IMAGE_PIXELS} pixels)") from None
    except (UnidentifiedImageError, OSError):
        raise InvalidImageError(f"{where}: not a JPEG/PNG image") from None
    if kind not in ("JPEG", "PNG"):
        raise InvalidImageError(f"{where}: image format {kind} is not supported (send JPEG or PNG)")
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidImageError(
            f"{where}: image of {width}x{height} pixels is too large (limit {MAX_IMAGE_PIXELS} pixels)"
        )
    return data


# spark_udf in local mode loads the model again for every partition, from the same folder: the compiled OpenVINO form
# is kept per process, for the two latest folders (and the check of the files, skinml.serving.integrity, once).
@functools.lru_cache(maxsize=2)
def compiled_form(folder: str, stamp: tuple, precision: str):
    """The OpenVINO form compiled (skinml.model.openvino_form.load, which reads the precision asked for itself),
    once per folder, its model's files (`stamp`) and that precision."""
    return openvino_form.load(folder)


class SkinLesionClassifier(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around the classifier: its OpenVINO form (`openvino_model` artifact) where OpenVINO runs it,
    without TensorFlow; else the Keras model (`keras_model`) through tf.data and skinml.model.engine."""

    def load_context(self, context) -> None:
        self.keras_path = context.artifacts["keras_model"]
        classes_file = context.artifacts.get("classes")
        self.classes = tuple(json.loads(Path(classes_file).read_text())) if classes_file else LEGACY_CLASSES
        decisions_file = context.artifacts.get("decisions")
        self.decisions = json.loads(Path(decisions_file).read_text()) if decisions_file else {}
        familiarity_file = context.artifacts.get("familiarity")
        self.familiarity = Familiarity.load(familiarity_file) if familiarity_file else None
        if self.familiarity is None:
            logging.getLogger(__name__).warning(
                "this model was logged before skinml scored familiarity: its answers carry no `unfamiliar` "
                "(retrain it to flag images unlike its training data)"
            )
        model_dir = Path(self.keras_path).parents[1]
        stamp = files_stamp(model_dir)  # the OpenVINO form's files included
        check_served_copy(model_dir, stamp)
        folder = context.artifacts.get("openvino_model")
        self.openvino = None
        if folder and serving_engine() == "openvino":
            self.openvino = compiled_form(str(folder), stamp, settings.choice("SKINML_PRECISION"))
        else:
            # lazy: the TensorFlow form only (the OpenVINO form serves without TensorFlow)
            from skinml.model.engine import predictor

            # OpenVINO on a CPU, TensorFlow on a GPU (skinml.model.engine); with familiarity, the model that answers
            # [probabilities | representation] (the OpenVINO form logged with such a model answers the same)
            self.run_model = predictor(self.scoring_model if self.familiarity else self.model)

    @functools.cached_property
    def scoring_model(self):
        """The Keras classifier answering [probabilities | representation] (skinml.model.network.scoring_model)."""
        # lazy: the TensorFlow form only (the OpenVINO form serves without TensorFlow)
        from skinml.model.network import scoring_model

        return scoring_model(self.model)

    @functools.cached_property
    def model(self):
        """The Keras classifier (loaded on first use: the OpenVINO form does not need it)."""
        # lazy: the TensorFlow form only (the OpenVINO form serves without TensorFlow)
        from skinml.model.tensorflow_import import import_tensorflow_quietly

        import_tensorflow_quietly()
        # lazy: the TensorFlow form only (the OpenVINO form serves without TensorFlow)
        import keras

        import skinml.model.network  # noqa: F401  (registers the custom layers the saved model uses)

        return keras.saving.load_model(self.keras_path, compile=False)

    def predict_images(self, images: list[bytes], first_row: int = 0) -> np.ndarray:
        """The model's answer for raw image bytes, decoded and run CHUNK_ROWS images at a time: class probabilities
        (n, classes), followed by each image's representation (n, classes + d) for a model that scores familiarity.
        `first_row`: the first image's row in the request, for errors."""
        if self.openvino is not None:
            return self.predict_with_openvino(images, first_row)
        # lazy: the TensorFlow form only (the OpenVINO form serves without TensorFlow)
        from skinml.data.loader import bytes_dataset

        probabilities = []
        size = int(self.model.input_shape[1])
        batches = iter(bytes_dataset(images, size, batch_size=CHUNK_ROWS))  # one pipeline, chunk by chunk
        for start in range(0, len(images), CHUNK_ROWS):
            try:
                batch = next(batches).numpy()
            except Exception as exc:  # tf raises InvalidArgumentError for truncated/corrupt data
                first, last = first_row + start, first_row + min(start + CHUNK_ROWS, len(images)) - 1
                raise InvalidImageError(
                    f"an image in rows {first}-{last} could not be decoded ({type(exc).__name__})"
                ) from None
            probabilities.append(self.run_model(batch))
        return np.concatenate(probabilities)

    def predict_with_openvino(self, images: list[bytes], first_row: int = 0) -> np.ndarray:
        """predict_images on the OpenVINO form: Pillow decodes, consecutive images of one size run together."""
        probabilities = []
        for start in range(0, len(images), CHUNK_ROWS):
            pixels = []
            for row, data in enumerate(images[start : start + CHUNK_ROWS], first_row + start):
                try:
                    pixels.append(openvino_form.decode(data))
                except (OSError, ValueError, SyntaxError):  # Pillow: truncated or corrupt data
                    raise InvalidImageError(f"row {row}: the image could not be decoded") from None
            for run in openvino_form.same_size_runs(pixels, CHUNK_ROWS):
                probabilities.append(self.openvino(np.stack([pixels[i] for i in run])))
        return np.concatenate(probabilities)

    # MLflow reads the hint: from pd.DataFrame it infers no schema. The `inputs` and `instances` forms arrive as a
    # dict or an array (no input schema: skinml.serving.request_form.image_values).
    def answer(self, scores: np.ndarray) -> pd.DataFrame:
        """The answer for what predict_images returned: with familiarity, its representation part becomes each
        image's distance and flag (answer_frame)."""
        if self.familiarity is None:
            return answer_frame(scores, self.classes, self.decisions)
        probs, representation = scores[:, : len(self.classes)], scores[:, len(self.classes) :]
        distances = self.familiarity.distances(representation)
        return answer_frame(probs, self.classes, self.decisions, distances=distances, familiarity=self.familiarity)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """The answer for a request; every error is a ServingError with a short message of skinml's own."""
        try:
            values = image_values(model_input)
            if in_http_server():
                check_request_size(values)
            scores = []
            for start in range(0, len(values), BATCH_ROWS):  # the decoded bytes of one batch at a time
                batch = values[start : start + BATCH_ROWS]
                images = [image_bytes(value, f"row {row}") for row, value in enumerate(batch, start)]
                scores.append(self.predict_images(images, start))
            return self.answer(np.concatenate(scores))
        except ServingError:
            raise
        except Exception as exc:  # else MLflow answers with its stack trace
            logging.getLogger(__name__).exception("the model failed on a request")
            raise ModelFailure(
                f"the model failed on this request ({type(exc).__name__}); the server's log has the details"
            ) from exc


def answer_frame(
    probs: np.ndarray,
    classes: tuple[str, ...],
    decisions: dict | None = None,
    *,
    distances: np.ndarray | None = None,
    familiarity: Familiarity | None = None,
) -> pd.DataFrame:
    """The model's answer: one row per image, `label` and a probability per class (columns named by class); with
    the model's decisions (skinml.evaluation.decisions) also `p_positive` (P of the positive group), `refer` (at the
    first operating point) and `defer` (confidence below the deferral threshold; left out for a model whose deferral no
    confidence reached on validation, skinml.evaluation.decisions.defers_everything). With the model's familiarity
    (skinml.evaluation.familiarity) and each image's `distances`, also `familiarity_distance` and `unfamiliar`: an
    unfamiliar image is always `defer: true`, and its `refer` is null (no referral decision is made for it)."""
    # `label` first: the leftmost column is what spark_udf's result_type="string" returns
    columns: dict[str, object] = {"label": [classes[k] for k in probs.argmax(axis=1)]}
    columns.update({name: probs[:, k].astype(np.float64) for k, name in enumerate(classes)})
    decisions = decisions or {}
    if decisions.get("positive_classes"):
        positive = [list(classes).index(name) for name in decisions["positive_classes"]]
        columns["p_positive"] = probs[:, positive].sum(axis=1).astype(np.float64)
        if decisions.get("operating_points"):
            columns["refer"] = columns["p_positive"] >= decisions["operating_points"][0]["threshold"]
    scored = familiarity is not None and distances is not None
    unfamiliar = familiarity.unfamiliar(distances) if scored else np.zeros(len(probs), dtype=bool)
    if "refer" in columns and unfamiliar.any():
        columns["refer"] = np.where(unfamiliar, None, columns["refer"]).astype(object)
    if decisions.get("deferral") and decisions["deferral"]["confidence"] <= 1:  # above 1: it would defer every image,
        columns["defer"] = (probs.max(axis=1) < decisions["deferral"]["confidence"]) | unfamiliar  # it says nothing
    elif scored:
        columns["defer"] = unfamiliar
    if scored:
        columns["familiarity_distance"] = np.asarray(distances, dtype=np.float64)
        columns["unfamiliar"] = unfamiliar
    return pd.DataFrame(columns)
