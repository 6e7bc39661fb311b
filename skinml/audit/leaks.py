"""Leaks across data sets: the images of an evaluation set that duplicate an image a model trained on, and the
figures of the evaluation without them."""

from __future__ import annotations

import pandas as pd

from skinml.audit.duplicates import duplicate_pairs
from skinml.audit.findings import named_pairs
from skinml.audit.keypoints import all_keypoints
from skinml.core.labels import class_indices
from skinml.core.names import LEAKED_IMAGES_METRIC, WITHOUT_LEAKS, metric_name
from skinml.evaluation.familiarity import part_metrics
from skinml.evaluation.metrics import classification_metrics

LEAK_COLUMNS = ["image_id", "training_image", "kind", "inliers", "dx", "training_dx"]


def leaked_images(images: pd.DataFrame, training: pd.DataFrame) -> pd.DataFrame:
    """The images of `images` (image_id, lesion_id, dx, path) that duplicate one of `training`: image_id, the
    training image it duplicates (an exact one first, else the most matched), kind ('exact' | 'near'), inliers,
    both labels. One row per leaked image."""
    images, training = images.reset_index(drop=True), training.reset_index(drop=True)
    if images.empty or training.empty:
        return pd.DataFrame(columns=LEAK_COLUMNS)
    pairs = duplicate_pairs(all_keypoints(images["path"].tolist()), all_keypoints(training["path"].tolist()))
    named = named_pairs(images, pairs, training)
    leaks = pd.DataFrame(
        {
            "image_id": named["image_a"],
            "training_image": named["image_b"],
            "kind": named["kind"],
            "inliers": named["inliers"],
            "dx": named["dx_a"],
            "training_dx": named["dx_b"],
        },
        columns=LEAK_COLUMNS,
    )
    leaks = leaks.assign(exact=leaks["kind"] == "exact").sort_values(
        ["image_id", "exact", "inliers"], ascending=[True, False, False]
    )
    return leaks.drop_duplicates("image_id").drop(columns="exact").reset_index(drop=True)


def leak_metrics(predictions: pd.DataFrame, classes: tuple[str, ...], leaks: pd.DataFrame, prefix: str) -> dict:
    """`<prefix>_leaked_images` and `<prefix>_without_leaks_<figure>` (familiarity.part_metrics) from an evaluation's
    predictions (a probability per class, image_id, dx) with the leaked images left out."""
    named = {metric_name(prefix, LEAKED_IMAGES_METRIC): float(len(leaks))}
    kept = predictions[~predictions["image_id"].isin(leaks["image_id"])]
    if kept.empty:
        return named
    figures = classification_metrics(class_indices(kept["dx"], classes), kept[list(classes)].to_numpy(), classes)
    return {**named, **part_metrics(figures, prefix, WITHOUT_LEAKS)}
