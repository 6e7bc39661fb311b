"""A trained model's representation of images: the pooled features its last layer reads, of cached features or of
image files (skinml.evaluation.familiarity measures how far they lie from the training images')."""

from __future__ import annotations

import keras
import numpy as np

from skinml.data.loader import image_dataset
from skinml.features.batches import PredictionBatches, Rows
from skinml.model.network import PREDICT_BATCH_SIZE, head_with_representation, scoring_model


def feature_representations(head: keras.Model, features: Rows | np.ndarray) -> np.ndarray:
    """The head's representation of cached features (the first cached view of each row): (n, d)."""
    _, representation = head_with_representation(head).predict(
        PredictionBatches(features, PREDICT_BATCH_SIZE), verbose=0
    )
    return np.asarray(representation, dtype=np.float32)


def image_representations(classifier: keras.Model, paths: list[str]) -> np.ndarray:
    """The classifier's representation of image files: (n, d)."""
    n_classes = int(classifier.output_shape[-1])
    images = image_dataset(paths, int(classifier.input_shape[1]), PREDICT_BATCH_SIZE)
    scores = scoring_model(classifier).predict(images, verbose=0)
    return np.asarray(scores[:, n_classes:], dtype=np.float32)
