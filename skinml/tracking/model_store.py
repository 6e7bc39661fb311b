"""How skinml models are logged to MLflow and loaded back: the pyfunc model (skinml.serving.classifier) with its
Keras and OpenVINO forms, its classes, signature, input example and pinned requirements."""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from PIL import Image

import skinml
from skinml.core.labels import METADATA_KEY
from skinml.core.names import DECISIONS_KEY, FAMILIARITY_KEY
from skinml.evaluation.familiarity import Familiarity
from skinml.model import openvino_form
from skinml.serving.classifier import answer_frame
from skinml.serving.integrity import verified_copy
from skinml.serving.request_form import IMAGE_COLUMN


def signature(
    classes: tuple[str, ...], decisions: dict | None = None, familiarity: Familiarity | None = None
) -> ModelSignature:
    """The served model's signature: its answer's columns (skinml.serving.classifier.answer_frame).

    No input schema: MLflow would enforce one before the model runs, and answer a request that fails it (a missing
    column, no rows, JSON sent as CSV) with the whole request in the message. skinml.serving.request_form checks
    the input.
    """
    probs = np.full((1, len(classes)), 1 / len(classes))
    distances = np.zeros(1) if familiarity else None
    answer = answer_frame(probs, classes, decisions, distances=distances, familiarity=familiarity)  # columns, types
    return ModelSignature(outputs=mlflow.models.infer_signature(model_output=answer).outputs)


def input_example() -> pd.DataFrame:
    """A request of one image (a plain skin-coloured 200x150 JPEG, the data's size): MLflow stores it with the model
    as `serving_input_example.json` and, at logging time, checks that the logged model answers it."""
    jpeg = io.BytesIO()
    Image.new("RGB", (200, 150), (205, 150, 125)).save(jpeg, format="JPEG")
    return request_frame([jpeg.getvalue()])


def request_frame(images: list[bytes]) -> pd.DataFrame:
    """The model's input for image files' bytes: one row per image, base64 in the image column."""
    return pd.DataFrame({IMAGE_COLUMN: [base64.b64encode(image).decode() for image in images]})


def pip_requirements() -> list[str]:
    # lazy: the model's own libraries, loaded only to log a model (`skinml predict` on OpenVINO loads no TensorFlow)
    import keras
    import PIL
    import tensorflow as tf

    requirements = [
        f"tensorflow=={tf.__version__}",
        f"keras=={keras.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"pillow=={PIL.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"threadpoolctl=={importlib.metadata.version('threadpoolctl')}",
    ]
    try:
        requirements.append(f"openvino=={importlib.metadata.version('openvino')}")
    except importlib.metadata.PackageNotFoundError:
        pass  # the served model then runs on TensorFlow
    return requirements


def log_classifier(
    model,
    classes: tuple[str, ...],
    decisions: dict | None = None,
    *,
    familiarity: Familiarity | None = None,
    name: str = "model",
    registered_model_name: str | None = None,
):
    """Log the Keras classifier of `classes` as a pyfunc model in the active run; returns MLflow's ModelInfo. The
    classes go with it (`classes.json` among its artifacts, its signature and its MLmodel metadata), and so do its
    decisions when given (`decisions.json`: skinml.evaluation.decisions) and its familiarity (`familiarity.npz`:
    skinml.evaluation.familiarity; its OpenVINO form then answers [probabilities | representation])."""
    if int(model.output_shape[-1]) != len(classes):
        raise ValueError(f"the model has {model.output_shape[-1]} outputs for {len(classes)} classes {classes}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classifier.keras"
        model.save(path)
        (Path(tmp) / "classes.json").write_text(json.dumps(list(classes)))
        artifacts = {"keras_model": str(path), "classes": str(Path(tmp) / "classes.json")}
        if decisions:
            (Path(tmp) / "decisions.json").write_text(json.dumps(decisions, indent=2))
            artifacts["decisions"] = str(Path(tmp) / "decisions.json")
        served = model
        if familiarity is not None:
            (Path(tmp) / "familiarity.npz").write_bytes(familiarity.to_bytes())
            artifacts["familiarity"] = str(Path(tmp) / "familiarity.npz")
            # lazy: Keras loads only to log a model (`skinml predict` on OpenVINO loads no TensorFlow)
            from skinml.model.network import scoring_model

            served = scoring_model(model)
        if openvino_form.export(served, Path(tmp) / "openvino"):
            artifacts["openvino_model"] = str(Path(tmp) / "openvino")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(skinml.__file__).parent / "serving" / "model_code.py"),  # models from code: no pickle
            artifacts=artifacts,
            signature=signature(classes, decisions, familiarity),
            input_example=input_example(),
            metadata={
                METADATA_KEY: list(classes),
                **({DECISIONS_KEY: decisions} if decisions else {}),
                **({FAMILIARITY_KEY: familiarity.summary()} if familiarity else {}),
            },
            pip_requirements=pip_requirements(),
            code_paths=[str(Path(skinml.__file__).parent)],
            registered_model_name=registered_model_name,
        )


def load_model(model_uri: str, with_keras: bool = False, check_requirements: bool = True) -> mlflow.pyfunc.PyFuncModel:
    """A logged skinml model, loaded from a local copy whose files, for a registered version, were first checked
    against the digest recorded at registration (skinml.serving.integrity). `with_keras`: load its Keras model too (the
    OpenVINO form does not need it), while the copy exists. `check_requirements`: MLflow compares the model's
    requirements with the installed packages and warns (a scan of every installed package: about 1 s)."""
    with tempfile.TemporaryDirectory(prefix="skinml-model-") as tmp:
        model = mlflow.pyfunc.load_model(verified_copy(model_uri, tmp), suppress_warnings=not check_requirements)
        if with_keras:
            model.unwrap_python_model().model  # noqa: B018  (a cached property: read now, kept)
        return model


def load_classifier(model_uri: str) -> tuple[object, Familiarity | None]:
    """The Keras classifier inside a logged skinml pyfunc model, and its familiarity (None for a model logged
    before skinml scored familiarity)."""
    python_model = load_model(model_uri, with_keras=True).unwrap_python_model()
    return python_model.model, python_model.familiarity


def load_keras_model(model_uri: str):
    """The Keras classifier inside a logged skinml pyfunc model."""
    return load_classifier(model_uri)[0]
