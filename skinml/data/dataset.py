"""Read and validate a labelled image folder in any layout skinml knows (see `skinml.data.layouts`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from PIL import Image

from skinml.data.label_map import apply_label_map
from skinml.data.layouts import HAM10000_CLASSES, IMAGE_SUFFIXES, READERS, label_table, read_folder
from skinml.data.tables import DataValidationError, read_table

__all__ = [
    "HAM10000_CLASSES",
    "DataValidationError",
    "load_dataset",
    "index_images",
    "check_decodable",
    "images_to_score",
]
log = logging.getLogger(__name__)
COLUMNS = ["image_id", "lesion_id", "dx", "path"]
RESERVED_LABELS = {"label", "file", "image", "image_id", "dx", "predicted", "true_label", "error"}  # answer columns


def index_images(data_dir: Path) -> dict[str, Path]:
    """Map image id (file stem) -> path, for images in the folder or any sub-folder (e.g. the Kaggle parts)."""
    images: dict[str, Path] = {}
    for path in sorted(data_dir.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.name.startswith("."):
            images.setdefault(path.stem, path)
    return images


def resolve_paths(frame: pd.DataFrame, data_dir: Path, source: str, problems: list[str]) -> list[str]:
    """Each row's image file: `file` as a path below the folder, else as a file stem anywhere under it."""
    images: dict[str, Path] | None = None
    paths = []
    for row, name in zip(frame.index, frame["file"].astype(str)):
        direct = data_dir / name
        if Path(name).suffix.lower() in IMAGE_SUFFIXES and direct.is_file():
            paths.append(str(direct))
            continue
        images = index_images(data_dir) if images is None else images
        path = images.get(Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name)
        if path is None:
            shown = name if Path(name).suffix else f"{name}.jpg"
            problems.append(f"{source} row {row + 2}: image {shown} not found under {data_dir}")
        paths.append(str(path) if path else "")
    return paths


def load_dataset(
    data_dir: str | Path, check_images: bool = True, data_format: str = "auto", label_map: dict[str, str] | None = None
) -> pd.DataFrame:
    """Read a labelled folder into a frame: image_id, lesion_id (the split's group), dx (label), path, and the slice
    columns the data has. The layout is recognised from the folder (or forced by `data_format`); `label_map`
    renames, merges or drops labels. `frame.attrs` holds data_format, grouped_by (None: no group column),
    label_counts_dropped and notes. Raises DataValidationError listing every problem found.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataValidationError(data_dir, [f"data folder {data_dir} does not exist"])
    layout, csv = label_table(data_dir, data_format)
    problems: list[str] = []
    if csv is None:
        frame, grouped_by, notes = read_folder(data_dir, problems)
        source = data_dir.name
    else:
        table = read_table(csv)
        frame, grouped_by, notes = READERS[layout](table, csv, data_dir, problems)
        source = csv.name
    if problems:
        raise DataValidationError(data_dir, problems)
    if frame.empty:
        raise DataValidationError(data_dir, [f"{source}: has no images"])
    repeated = frame["image_id"][frame["image_id"].duplicated()]
    problems += [f"{source}: image {image} appears more than once" for image in repeated]
    frame = frame.assign(path=resolve_paths(frame, data_dir, source, problems)).drop(columns=["file"])
    if check_images:
        problems += [f"{path}: empty image file" for path in frame["path"] if path and Path(path).stat().st_size == 0]
    if problems:
        raise DataValidationError(data_dir, problems)
    labels = set(frame["dx"])
    frame, dropped = apply_label_map(frame, label_map or {})
    if frame.empty:
        raise DataValidationError(data_dir, ["the label map drops every image"])
    unused = sorted({str(k).strip().lower() for k in label_map or {}} - labels)
    if unused:
        notes.append(f"label map: {unused} name(s) no label of {data_dir.name} (its labels: {sorted(labels)})")
    reserved = sorted(set(frame["dx"]) & RESERVED_LABELS)
    if reserved:
        raise DataValidationError(
            data_dir, [f"class name(s) {reserved} are column names of the model's answer; rename them with --label-map"]
        )
    if check_images:
        check_decodable(frame["path"].tolist())
    for note in notes:
        log.warning(note)
    frame = frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]].reset_index(drop=True)
    frame.attrs.update(data_format=layout, grouped_by=grouped_by, label_counts_dropped=dropped, notes=notes)
    return frame


def images_to_score(
    data_dir: str | Path, data_format: str = "auto", label_map: dict[str, str] | None = None
) -> pd.DataFrame:
    """The images of a folder to score, in a stable order: `file` (its path below the folder), `image_id` and, in a
    labelled layout, `dx`. A folder with images at its top and no label table is unlabelled: every image under it,
    sub-folders included (class folders alone are the labelled image-folder tree)."""
    data_dir = Path(data_dir)

    def images(paths) -> list[str]:
        return sorted(
            path.relative_to(data_dir).as_posix()
            for path in paths
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.name.startswith(".")
        )

    plain = data_format == "auto" and data_dir.is_dir() and not any(data_dir.glob("*.csv"))
    if plain and images(data_dir.iterdir()):
        files = images(data_dir.rglob("*"))
        return pd.DataFrame({"file": files, "image_id": [file.rsplit(".", 1)[0] for file in files]})
    frame = load_dataset(data_dir, check_images=False, data_format=data_format, label_map=label_map)
    files = [Path(path).relative_to(data_dir).as_posix() for path in frame["path"]]
    return pd.DataFrame({"file": files, "image_id": frame["image_id"], "dx": frame["dx"]})


def names_groups(frame: pd.DataFrame) -> bool:
    """Whether the data read into `frame` names its groups (a lesion or patient column; load_dataset's attrs)."""
    return frame.attrs.get("grouped_by", "lesion_id") is not None


def check_decodable(paths: list[str]) -> None:
    """Raise DataValidationError naming every file that is not a complete, decodable JPEG/PNG."""
    problems = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()  # reads all the pixel data, so truncated files fail too
        except Exception as exc:  # PIL raises many types for bad files
            problems.append(f"{path}: not a decodable image ({type(exc).__name__}: {exc})")
    if problems:
        raise DataValidationError(Path(paths[0]).parent if paths else "", problems)
