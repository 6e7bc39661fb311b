"""Read and validate a labelled image folder: the official HAM10000 layout or the ISIC 2018 Task 3 one-hot form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinml import CLASSES

HAM_REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")
ISIC_COLUMNS = ("image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DataValidationError(ValueError):
    """A data folder failed validation; `problems` lists every problem found, each naming its file/row/field."""

    def __init__(self, source: Path | str, problems: list[str]):
        self.source = str(source)
        self.problems = problems
        shown = "\n  - ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{source}: {len(problems)} problem(s):\n  - {shown}{more}")


def find_label_csv(data_dir: Path) -> Path:
    """The metadata/ground-truth CSV of a data folder (HAM10000 metadata preferred)."""
    csvs = sorted(p for p in data_dir.glob("*.csv") if p.is_file())
    if not csvs:
        raise DataValidationError(data_dir, [f"no metadata CSV in {data_dir} (expected HAM10000_metadata.csv "
                                             "or an ISIC 2018 Task 3 ground-truth CSV)"])
    for csv in csvs:
        if "metadata" in csv.name.lower():
            return csv
    for csv in csvs:
        if "groundtruth" in csv.name.lower().replace("_", ""):
            return csv
    return csvs[0]


def index_images(data_dir: Path) -> dict[str, Path]:
    """Map image id (file stem) -> path, for images in the folder or any sub-folder (e.g. the Kaggle parts)."""
    images: dict[str, Path] = {}
    for path in sorted(data_dir.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.name.startswith("."):
            images.setdefault(path.stem, path)
    return images


def _read_ham(csv: Path, frame: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    missing = [c for c in HAM_REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        problems.append(f"{csv.name}: missing required column(s) {missing}; found {list(frame.columns)}")
        return frame
    for row, (image_id, dx) in enumerate(zip(frame["image_id"], frame["dx"]), start=2):
        if dx not in CLASSES:
            problems.append(f"{csv.name} row {row} ({image_id}): unknown class dx={dx!r}; "
                            f"expected one of {list(CLASSES)}")
    for column in HAM_REQUIRED_COLUMNS:
        for row in frame.index[frame[column].isna() | (frame[column].astype(str).str.strip() == "")]:
            problems.append(f"{csv.name} row {row + 2}: empty {column}")
    return frame


def _read_isic(csv: Path, frame: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    onehot = frame[[c.upper() for c in CLASSES]].apply(pd.to_numeric, errors="coerce")
    for row, column in zip(*np.nonzero(onehot.isna().to_numpy())):
        problems.append(f"{csv.name} row {row + 2}: {onehot.columns[column]} is not a number")
    for row, (image, sums) in enumerate(zip(frame["image"], onehot.sum(axis=1)), start=2):
        if sums != 1:
            problems.append(f"{csv.name} row {row} ({image}): one-hot labels sum to {sums}, expected exactly one 1")
    labels = onehot.idxmax(axis=1).str.lower()
    return pd.DataFrame({"lesion_id": frame["image"], "image_id": frame["image"], "dx": labels})


def first_line_not_utf8(path: Path) -> int:
    """The number of the first line of a file that does not decode as UTF-8 (0: every line does)."""
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 0


def load_dataset(data_dir: str | Path, check_images: bool = True) -> pd.DataFrame:
    """Read a labelled folder into a DataFrame with columns lesion_id, image_id, dx, path (+ any metadata columns).

    Accepts the official HAM10000 layout (metadata CSV + `<image_id>.jpg`, possibly in sub-folders) and the ISIC
    2018 Task 3 one-hot ground-truth form. Raises DataValidationError listing every problem found.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataValidationError(data_dir, [f"data folder {data_dir} does not exist"])
    csv = find_label_csv(data_dir)
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
    except UnicodeDecodeError:
        raise DataValidationError(csv, [f"{csv.name}: line {first_line_not_utf8(csv)} is not UTF-8 text (save the "
                                        "file as UTF-8)"]) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataValidationError(csv, [f"{csv.name}: not a readable CSV ({exc})"]) from None
    problems: list[str] = []
    if all(c in frame.columns for c in ISIC_COLUMNS):
        frame = _read_isic(csv, frame, problems)
    else:
        frame = _read_ham(csv, frame, problems)
    if problems:
        raise DataValidationError(data_dir, problems)
    if frame.empty:
        raise DataValidationError(data_dir, [f"{csv.name}: has no rows"])

    duplicated = frame["image_id"][frame["image_id"].duplicated()]
    problems += [f"{csv.name}: image_id {i} appears more than once" for i in duplicated]
    images = index_images(data_dir)
    paths = []
    for row, image_id in enumerate(frame["image_id"], start=2):
        path = images.get(image_id)
        if path is None:
            problems.append(f"{csv.name} row {row}: image {image_id}.jpg not found under {data_dir}")
        elif check_images and path.stat().st_size == 0:
            problems.append(f"{path}: empty image file (row {row} of {csv.name})")
        paths.append(str(path) if path else "")
    if problems:
        raise DataValidationError(data_dir, problems)
    frame = frame.assign(path=paths)
    if check_images:
        check_decodable(frame["path"].tolist())
    return frame.reset_index(drop=True)


def check_decodable(paths: list[str]) -> None:
    """Raise DataValidationError naming every file that is not a complete, decodable JPEG/PNG."""
    from PIL import Image

    problems = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()  # reads all the pixel data, so truncated files fail too
        except Exception as exc:  # PIL raises many types for bad files
            problems.append(f"{path}: not a decodable image ({type(exc).__name__}: {exc})")
    if problems:
        raise DataValidationError(Path(paths[0]).parent if paths else "", problems)
