"""`skinml predict`: a logged or registered model's answer for image files, each unreadable file named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinml.serving.classifier import InvalidImageError, image_bytes
from skinml.tracking.model_store import load_model


def read_image_file(path: str) -> bytes:
    """A file's bytes, checked as a request's image is; InvalidImageError names the file and the problem."""
    try:
        return image_bytes(Path(path).read_bytes(), path)
    except OSError as exc:  # no such file, a folder, no permission
        raise InvalidImageError(f"{path}: {(exc.strerror or type(exc).__name__).lower()}") from None


def predict_files(model_uri: str, paths: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The served model's answer for the readable image files, one row per file (file, class probabilities, label), and
    the problem of each other file ("<file>: <problem>"), both in the order given. The model is loaded only when a
    file is readable."""
    images, problems = {}, {}  # by the file's place in `paths`
    for index, path in enumerate(paths):
        try:
            images[index] = read_image_file(path)
        except InvalidImageError as exc:
            problems[index] = exc.message
    probabilities = {}
    if images:
        classifier = load_model(model_uri, check_requirements=False).unwrap_python_model()  # no 1 s package scan
        # the files' bytes go straight to what the server runs after its checks (decoded CHUNK_ROWS at a time): no
        # base64 round trip, and the server's per-request row limit does not apply to a folder of files
        try:
            probabilities = dict(zip(images, classifier.predict_images(list(images.values()))))
        except InvalidImageError:  # a file whose header reads but whose data does not decode: found one by one
            for index, image in images.items():
                try:
                    probabilities[index] = classifier.predict_images([image])[0]
                except InvalidImageError:
                    problems[index] = f"{paths[index]}: the image could not be decoded"
    if not probabilities:
        return pd.DataFrame(columns=["file", "label"]), [problems[index] for index in sorted(problems)]
    table = classifier.answer(np.array(list(probabilities.values())))
    table.insert(0, "file", [paths[index] for index in probabilities])
    return table, [problems[index] for index in sorted(problems)]
