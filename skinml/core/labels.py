"""A model's label set: its classes come from its training data and travel with the logged model.

The classes are the sorted distinct labels of the training data (after any label map): HAM10000 gives its seven in
their usual order, a malignant-against-benign map gives `benign, malignant`. A logged model records them in its
MLmodel metadata, its signature's output columns and `classes.json` among its artifacts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

import numpy as np

from skinml.core.errors import DataError

METADATA_KEY = "skinml_classes"
HAM10000_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
# Models logged before the label set was data record no classes: theirs were HAM10000's (the HAM10000 reader's list).
LEGACY_CLASSES: tuple[str, ...] = HAM10000_CLASSES


def classes_of(labels: Iterable[str]) -> tuple[str, ...]:
    """The label set of a data set: its distinct labels, sorted."""
    return tuple(sorted({str(label) for label in labels}))


def label_set_slug(classes: Sequence[str]) -> str:
    """The classes as a name's part: `bkl-mel-nv`; their number and a digest (`9classes-1a2b3c`) when there are more
    than eight or one has other characters than letters, digits, `_` and `-`. The registered name of a model of other
    classes and the key of their compare view in the MLflow UI both end with it."""
    slug = "-".join(classes)
    if len(classes) > 8 or not re.fullmatch(r"[A-Za-z0-9_-]+", slug):
        slug = f"{len(classes)}classes-{hashlib.sha256(','.join(classes).encode()).hexdigest()[:6]}"
    return slug


def class_indices(labels: Iterable[str], classes: Sequence[str]) -> np.ndarray:
    """Each label's position in `classes`; ValueError naming the labels `classes` lacks."""
    position = {name: k for k, name in enumerate(classes)}
    labels = [str(label) for label in labels]
    unknown = sorted(set(labels) - set(position))
    if unknown:
        raise DataError(f"label(s) {unknown} are not among the model's classes {list(classes)}")
    return np.array([position[label] for label in labels], dtype=np.int64)
