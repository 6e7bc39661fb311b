"""`skinml predict`: a logged or registered model's answer for image files, each unreadable file named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinml.serving.classifier import InvalidImageError, SkinLesionClassifier, image_bytes
from skinml.tracking.model_store import load_model


def read_image_file(path: str) -> bytes:
    """A file's bytes, checked as a request's image is; InvalidImageError names the file and the problem."""
    try:
        return image_bytes(Path(path).read_bytes(), path)
    except OSError as exc:  # no such file, a folder, no permission
        raise InvalidImageError(f"{path}: {(exc.strerror or type(exc).__name__).lower()}") from None


def read_image_files(paths: list[str]) -> tuple[dict[int, bytes], dict[int, str]]:
    """The bytes of each readable file and the problem of each other one ("<file>: <problem>"), by place in `paths`."""
    images, problems = {}, {}
    for index, path in enumerate(paths):
        try:
            images[index] = read_image_file(path)
        except InvalidImageError as exc:
            problems[index] = exc.message
    return images, problems


def load_classifier(model_uri: str) -> SkinLesionClassifier:
    """The served model of `model_uri`, to call predict_images and answer on directly."""
    return load_model(model_uri, check_requirements=False).unwrap_python_model()  # no 1 s package scan


def score_images(
    classifier: SkinLesionClassifier, images: dict[int, bytes], paths: list[str]
) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """The model's scores of each image that decodes, and the problem of each image whose header reads but whose data
    does not ("<file>: <problem>"), by place in `paths`. The files' bytes go straight to what the server runs after
    its checks (decoded CHUNK_ROWS at a time): no base64 round trip, and no request limit."""
    try:
        return dict(zip(images, classifier.predict_images(list(images.values())))), {}
    except InvalidImageError:  # found one by one
        scores, problems = {}, {}
        for index, image in images.items():
            try:
                scores[index] = classifier.predict_images([image])[0]
            except InvalidImageError:
                problems[index] = f"{paths[index]}: the image could not be decoded"
        return scores, problems


def predict_files(model_uri: str, paths: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The served model's answer for the readable image files, one row per file (file, label, class probabilities),
    and the problem of each other file ("<file>: <problem>"), both in the order given. The model is loaded only when
    a file is readable."""
    images, problems = read_image_files(paths)
    classifier = load_classifier(model_uri) if images else None
    scores, undecodable = score_images(classifier, images, paths) if classifier else ({}, {})
    problems.update(undecodable)
    if not scores:
        return pd.DataFrame(columns=["file", "label"]), [problems[index] for index in sorted(problems)]
    table = classifier.answer(np.array(list(scores.values())))
    table.insert(0, "file", [paths[index] for index in scores])
    return table, [problems[index] for index in sorted(problems)]
