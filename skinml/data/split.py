"""Train/validation/test splits: lesion-grouped and class-stratified, or the old leaky image-level random split."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from skinml.core.errors import DataError, OptionError
from skinml.core.recipe import SPLIT_STRATEGIES, SPLITS

MANIFEST_COLUMNS = ["image_id", "lesion_id", "dx", "split"]


def _grouped_holdout(frame: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a class-stratified, lesion-grouped holdout of about `fraction` of the rows."""
    n_splits = max(2, round(1 / fraction))
    largest = frame["dx"].value_counts()
    if largest.iloc[0] < n_splits:  # StratifiedGroupKFold's own message names neither the class nor its size
        raise DataError(
            f"too few images for a {fraction:.0%} holdout: the largest class {largest.index[0]!r} has "
            f"{largest.iloc[0]} image(s), at least {n_splits} needed; add images"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, holdout = next(folds.split(frame, frame["dx"], groups=frame["lesion_id"]))
    mask = np.zeros(len(frame), dtype=bool)
    mask[holdout] = True
    return mask


MIN_GROUPS = 3  # one in each of train, val and test


def check_enough_groups(frame: pd.DataFrame) -> None:
    """ValueError when there is one class only, or naming each class with fewer than MIN_GROUPS groups (lesions,
    patients or images): too few to split into train, validation and test."""
    if frame["dx"].nunique() < 2:
        raise DataError(
            f"only one class ({frame['dx'].iloc[0]!r}, {len(frame)} images): a classifier needs at least "
            "two; check the folder's layout (--data-format) and the label map"
        )
    groups = frame.groupby("dx")["lesion_id"].nunique()
    few = groups[groups < MIN_GROUPS]
    if len(few):
        named = ", ".join(f"{label!r} has {count} group(s)" for label, count in few.items())
        raise DataError(
            f"too few images for a split: {named}, at least {MIN_GROUPS} needed (one each for train, "
            "val and test); add images, or merge or drop the class with --label-map"
        )


def make_split(
    frame: pd.DataFrame,
    strategy: str = "grouped",
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
) -> pd.DataFrame:
    """A manifest (image_id, lesion_id, dx, split) over `frame`, deterministic for a given seed.

    `grouped` keeps all images of a lesion on one side (StratifiedGroupKFold); `random` splits images independently,
    as the original baseline did (images of one lesion leak across splits).
    """
    if strategy not in SPLIT_STRATEGIES:
        raise OptionError(f"unknown split strategy {strategy!r}; choose one of {SPLIT_STRATEGIES}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise OptionError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in (0, 1) and sum to less than 1"
        )
    check_enough_groups(frame)
    frame = frame.sort_values("image_id").reset_index(drop=True)
    split = np.full(len(frame), "train", dtype=object)
    if strategy == "grouped":
        test = _grouped_holdout(frame, test_fraction, seed)
        rest = np.flatnonzero(~test)
        val = _grouped_holdout(frame.iloc[rest], val_fraction / (1 - test_fraction), seed + 1)
        split[test] = "test"
        split[rest[val]] = "val"
    else:
        index = np.arange(len(frame))
        rest, test = train_test_split(index, test_size=test_fraction, stratify=frame["dx"], random_state=seed)
        train, val = train_test_split(
            rest, test_size=val_fraction / (1 - test_fraction), stratify=frame["dx"].iloc[rest], random_state=seed + 1
        )
        split[test] = "test"
        split[val] = "val"
    return frame.assign(split=split)[MANIFEST_COLUMNS]


def split_keeping_test(
    frame: pd.DataFrame, fixed: pd.DataFrame, val_fraction: float = 0.15, seed: int = 42
) -> pd.DataFrame:
    """A manifest over a (possibly grown) data folder whose splits are those of `fixed`, kept as they were.

    An image `fixed` knows stays on its side, and so does a lesion it knows (new images of it join it); a group of
    `frame` holding a test image goes to test whole, whatever it is named (groups joined by duplicates are renamed):
    the test split stays, so that models stay comparable, and so do train and validation, so that unchanged data
    retrains on the features already cached for it. New lesions are split into train/val, grouped and stratified (all
    to train when too few for a holdout). Used by retraining.
    """
    frame = frame.sort_values("image_id").reset_index(drop=True)
    missing = set(fixed.loc[fixed["split"] == "test", "image_id"]) - set(frame["image_id"])
    if missing:
        raise DataError(
            f"{len(missing)} test image(s) of the fixed split are gone from the data: {sorted(missing)[:5]}"
        )
    test = fixed["split"] == "test"
    known = fixed.drop_duplicates("lesion_id").set_index("lesion_id")["split"]
    sides = frame["image_id"].map(fixed.set_index("image_id")["split"]).fillna(frame["lesion_id"].map(known))
    group_side = sides.groupby(frame["lesion_id"]).first()  # a known image's side, for its group's new images
    split = sides.fillna(frame["lesion_id"].map(group_side)).to_numpy(dtype=object)
    test_groups = set(frame.loc[frame["image_id"].isin(fixed.loc[test, "image_id"]), "lesion_id"])
    split[frame["lesion_id"].isin(test_groups | set(fixed.loc[test, "lesion_id"])).to_numpy()] = "test"
    new = np.flatnonzero(pd.isna(split))
    split[new] = "train"
    if len(new) and frame.iloc[new]["dx"].value_counts().iloc[0] >= max(2, round(1 / val_fraction)):
        split[new[_grouped_holdout(frame.iloc[new], val_fraction, seed + 1)]] = "val"
    return frame.assign(split=split)[MANIFEST_COLUMNS]


def lesions_crossing(manifest: pd.DataFrame) -> int:
    """How many lesions have images in more than one split (0 for an honest split)."""
    return int((manifest.groupby("lesion_id")["split"].nunique() > 1).sum())


def split_summary(manifest: pd.DataFrame) -> dict[str, int]:
    """Counts per split and the number of lesions crossing split boundaries."""
    counts = manifest["split"].value_counts()
    summary = {f"n_{name}": int(counts.get(name, 0)) for name in SPLITS}
    summary["lesions_crossing_splits"] = lesions_crossing(manifest)
    return summary


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a split manifest CSV, checking its columns and split names."""
    if not Path(path).is_file():
        raise DataError(f"split manifest {path} does not exist")
    manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise DataError(f"{path}: not a split manifest, missing column(s) {missing}")
    bad = sorted(set(manifest["split"]) - set(SPLITS))
    if bad:
        raise DataError(f"{path}: unknown split name(s) {bad}; expected {SPLITS}")
    return manifest


def manifest_digest(manifest: pd.DataFrame) -> str:
    """sha256 of the manifest's canonical CSV form: identifies a split exactly."""
    canonical = manifest[MANIFEST_COLUMNS].sort_values("image_id").to_csv(index=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
