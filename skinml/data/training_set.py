"""The images a model trains on: the data folder read with the recipe's layout and label map, joined with its split,
and the model's classes (the split's labels)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from skinml.core.errors import DataError
from skinml.core.labels import class_indices, classes_of
from skinml.core.names import (
    DATA_FORMAT_TAG,
    DATA_NOTES_TAG,
    DUPLICATE_GROUPS_TAG,
    GROUPED_BY_TAG,
    LABEL_MAP_DROPPED_TAG,
    SPLIT_GROUPED_BY_TAG,
)
from skinml.core.recipe import TrainConfig
from skinml.data.dataset import load_dataset, names_groups
from skinml.data.split import make_split
from skinml.data.tables import without_images

log = logging.getLogger(__name__)


def labelled_split(
    data_dir: str | Path,
    manifest: pd.DataFrame | None,
    config: TrainConfig,
    *,
    regroup: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, ...]]:
    """The validated data folder joined with its split manifest (a lesion-grouped split by the config's seed made
    here when not given, on the groups `regroup` gives the read folder when given), and the model's classes: the
    manifest's labels. `label` holds each image's class index; the joined frame's attrs hold `data_tags`, what
    reading the data found."""
    frame = load_dataset(data_dir, data_format=config.data_format, label_map=dict(config.label_map))
    frame = without_images(frame, config.exclude_images)
    if manifest is not None and config.exclude_images:
        manifest = manifest[~manifest["image_id"].isin(config.exclude_images)].reset_index(drop=True)
    made_here = manifest is None
    if manifest is None:
        if regroup is not None:
            frame = regroup(frame)
        manifest = make_split(frame, seed=config.seed)
        warn_if_ungrouped(frame)
    missing = sorted(set(manifest["image_id"]) - set(frame["image_id"]))
    if missing:
        raise DataError(f"{len(missing)} image(s) of the split manifest are not in {data_dir}: {missing[:10]}")
    classes = classes_of(manifest["dx"])
    untrained = sorted(set(classes) - set(manifest.loc[manifest["split"] == "train", "dx"]))
    if untrained:
        raise DataError(
            f"class(es) {untrained} have no image in the train split: too few images or groups "
            "(add images, or merge or drop them with --label-map)"
        )
    joined = manifest.merge(frame[["image_id", "path"]], on="image_id", how="left")
    joined["label"] = class_indices(joined["dx"], classes)
    joined.attrs["data_tags"] = data_tags(frame, split_made=made_here)
    return joined, manifest, classes


def warn_if_ungrouped(frame: pd.DataFrame) -> None:
    """Say on the terminal when the data has no group column and no duplicate groups: its split is by image."""
    if not names_groups(frame) and frame.attrs.get("duplicate_groups") is None:
        log.warning(
            "%s: no column groups the images (lesion or patient): the split is by image, and images of one "
            "lesion may fall on both sides",
            frame.attrs.get("data_format", "this layout"),
        )


def data_tags(frame: pd.DataFrame, split_made: bool) -> dict[str, str]:
    """The MLflow tags that say what reading the data found: a split by image (when the split was made from it),
    the images a label map dropped per label, and the reader's notes."""
    tags = {
        DATA_FORMAT_TAG: str(frame.attrs.get("data_format", "")),
        GROUPED_BY_TAG: frame.attrs.get("grouped_by") or "image",
    }
    duplicate_groups = frame.attrs.get("duplicate_groups")
    if split_made and duplicate_groups is not None:
        tags[SPLIT_GROUPED_BY_TAG] = (
            f"{frame.attrs['grouped_by']} joined by near-duplicates"
            if frame.attrs.get("grouped_by")
            else "near-duplicate groups (the data has no group column)"
        )
        tags[DUPLICATE_GROUPS_TAG] = str(duplicate_groups)
    elif split_made and not names_groups(frame):
        tags[SPLIT_GROUPED_BY_TAG] = "image (the data has no group column)"
    dropped = {label: count for label, count in frame.attrs.get("label_counts_dropped", {}).items() if count}
    if dropped:
        tags[LABEL_MAP_DROPPED_TAG] = ", ".join(f"{label}: {count}" for label, count in sorted(dropped.items()))
    if frame.attrs.get("notes"):
        tags[DATA_NOTES_TAG] = "; ".join(frame.attrs["notes"])
    return tags


def model_labels(
    frame: pd.DataFrame, classes: tuple[str, ...], label_map: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The images of an evaluation set whose label (already mapped) is one of the model's `classes`, and the number
    left out per label: those the label map sent to a class the model does not know. A label that is neither a
    class of the model nor named by the map is a DataError naming it, its count and first image."""
    known = frame["dx"].isin(classes)
    mapped_away = set(label_map.values())
    unknown = frame.loc[~known & ~frame["dx"].isin(mapped_away), ["dx", "image_id"]]
    if len(unknown):
        counts = unknown.groupby("dx")["image_id"].agg(["size", "first"])
        named = "; ".join(f"{label!r}: {row['size']} image(s), e.g. {row['first']}" for label, row in counts.iterrows())
        raise DataError(
            f"evaluation label(s) the model does not know: {named}; the model's classes are "
            f"{list(classes)} (map or drop them with --label-map)"
        )
    left_out = frame.loc[~known, "dx"].value_counts().to_dict()
    return frame[known].reset_index(drop=True), {str(k): int(v) for k, v in left_out.items()}
