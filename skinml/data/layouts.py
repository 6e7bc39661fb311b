"""The layouts of a labelled image folder, recognised from what the folder holds.

Each reader turns the folder's label table into one frame: `image_id`, `lesion_id` (the group a split keeps on one
side: lesion or patient; the image's own id when the data has none), `dx` (the label, lower-cased), `file` (the
image: a file stem or a path relative to the folder) and the slice columns the data has (age, sex, localization,
dx_type, dataset, skin_type). It returns that frame, the column it grouped by (None: the split is by image) and
notes for the user; a problem (a missing column, an empty label) is appended to `problems`, naming file and row.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from skinml.core.labels import HAM10000_CLASSES
from skinml.data.tables import DataValidationError, read_head, read_table

LAYOUTS = ("ham10000", "isic", "isic2020", "pad-ufes-20", "csv", "folder")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# What marks each CSV layout (a column of its label table), as said to a user whose folder matches none.
DESCRIPTIONS = {
    "ham10000": "a CSV with image_id, dx, lesion_id",
    "isic": "a CSV with image and one-hot class columns",
    "isic2020": "a CSV with image_name, patient_id, target or diagnosis",
    "pad-ufes-20": "metadata.csv with img_id, patient_id, diagnostic",
    "csv": "a CSV with image, label[, group]",
    "folder": "sub-folders of images named by their class",
}
# The columns each CSV layout needs, named in the error for a folder that matches none.
REQUIRED_COLUMNS = {
    "ham10000": ("image_id", "dx", "lesion_id"),
    "isic": ("image",),
    "isic2020": ("image_name", "patient_id"),
    "pad-ufes-20": ("img_id", "patient_id", "diagnostic"),
    "csv": ("image", "label"),
}
ISIC_METADATA = ("lesion_id", "patient_id", "age_approx", "sex", "anatom_site_general", "anatom_site_general_challenge")

Read = tuple[pd.DataFrame, str | None, list[str]]


# The columns a CSV layout takes its labels from (any one of them): a CSV of the layout without one (ISIC 2020's
# test.csv beside its train.csv) is not its label table.
LABEL_COLUMNS = {
    "ham10000": ("dx",),
    "pad-ufes-20": ("diagnostic",),
    "csv": ("label",),
    "isic2020": ("benign_malignant", "target", "diagnosis"),
}


def csv_layout(head: pd.DataFrame) -> str | None:
    """The CSV layout of a table, from its (lower-cased) columns and first rows; None when none."""
    columns = list(head.columns)
    if "image_id" in columns:
        return "ham10000"
    if "img_id" in columns:
        return "pad-ufes-20"
    if "image_name" in columns:
        return "isic2020"
    if "image" in columns and ("label" in columns or "group" in columns):
        return "csv"
    onehot = [c for c in columns if c != "image" and c not in ISIC_METADATA]
    # one-hot: (nearly) every value of the other columns 0 or 1; the reader names any cell that is not
    if "image" in columns and onehot and head[onehot].isin(["0", "1", "0.0", "1.0"]).to_numpy().mean() >= 0.9:
        return "isic"
    return None


def label_columns(head: pd.DataFrame, layout: str) -> int:
    """How many columns of a table hold the layout's labels, then how many it has: to rank two candidate tables."""
    return sum(c in head.columns for c in LABEL_COLUMNS.get(layout, ())) * 1000 + len(head.columns)


def has_class_folders(data_dir: Path) -> bool:
    """Whether the folder holds sub-folders with images in them (the image-folder tree)."""
    return any(
        folder.is_dir()
        and not folder.name.startswith(".")
        and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*"))
        for folder in data_dir.iterdir()
    )


def missing(columns: list[str], needed: tuple[str, ...], csv: Path, problems: list[str]) -> bool:
    """Record the needed columns a table lacks; True when any is missing."""
    absent = [c for c in needed if c not in columns]
    if absent:
        problems.append(f"{csv.name}: missing required column(s) {absent}; found {columns}")
    return bool(absent)


def empty_cells(table: pd.DataFrame, columns: tuple[str, ...], csv: Path, problems: list[str]) -> None:
    """Record each row whose value in one of `columns` is empty."""
    for column in columns:
        empty = table[column].isna() | (table[column].astype(str).str.strip() == "")
        problems += [f"{csv.name} row {row + 2}: empty {column}" for row in table.index[empty]]


def groups(primary: pd.Series, *fallbacks: pd.Series) -> pd.Series:
    """A group per image: the first non-empty value among the columns given, in order."""
    group = primary.replace("", np.nan)
    for fallback in fallbacks:
        group = group.fillna(fallback.replace("", np.nan))
    return group


def without_suffix(names: pd.Series) -> pd.Series:
    """Image names with their image suffix (.jpg, .jpeg, .png) removed."""
    return names.str.replace(r"\.(jpe?g|png)$", "", case=False, regex=True)


def read_ham10000(table: pd.DataFrame, csv: Path, data_dir: Path, problems: list[str]) -> Read:
    if missing(list(table.columns), ("lesion_id", "image_id", "dx"), csv, problems):
        return table, "lesion_id", []
    empty_cells(table, ("lesion_id", "image_id", "dx"), csv, problems)
    dx = table["dx"].str.strip().str.lower()
    for row in table.index[dx.notna() & ~dx.isin(HAM10000_CLASSES)]:
        problems.append(
            f"{csv.name} row {row + 2} ({table['image_id'][row]}): unknown class dx={table['dx'][row]!r}; "
            f"expected one of {list(HAM10000_CLASSES)}"
        )
    return table.assign(dx=dx, file=table["image_id"]), "lesion_id", []


def read_isic(table: pd.DataFrame, csv: Path, data_dir: Path, problems: list[str]) -> Read:
    """ISIC one-hot ground truth (any class columns), joined with an ISIC metadata CSV beside it when there is one."""
    empty_cells(table, ("image",), csv, problems)
    classes = [c for c in table.columns if c != "image" and c not in ISIC_METADATA]
    spelt = table.attrs.get("original_columns", {})
    onehot = table[classes].apply(pd.to_numeric, errors="coerce")
    for row, column in zip(*np.nonzero((onehot.isna() | ~onehot.isin([0, 1])).to_numpy())):
        name = classes[column]
        problems.append(f"{csv.name} row {row + 2}: {spelt.get(name, name)}={table[name][row]!r} is not 0 or 1")
    if problems:
        return table, None, []
    never = [c for c in classes if not onehot[c].any()]
    notes = (
        [f"{csv.name}: class column(s) {[spelt.get(c, c) for c in never]} never 1: left out of the label set"]
        if never
        else []
    )
    onehot = onehot.drop(columns=never)
    for row in table.index[onehot.sum(axis=1) != 1]:
        problems.append(
            f"{csv.name} row {row + 2} ({table['image'][row]}): one-hot labels sum to "
            f"{onehot.loc[row].sum():g}, expected exactly one 1"
        )
    frame = pd.DataFrame(
        {"image_id": without_suffix(table["image"]), "dx": onehot.idxmax(axis=1).str.lower(), "file": table["image"]}
    )
    metadata = isic_metadata(data_dir, csv, frame["image_id"])
    grouped_by = None
    if metadata is not None:
        frame = frame.merge(metadata, on="image_id", how="left")
        grouped_by = next((c for c in ("lesion_id", "patient_id") if c in metadata.columns), None)
    keys = [frame[c] for c in ("lesion_id", "patient_id") if c in frame.columns]
    frame["lesion_id"] = groups(*keys, frame["image_id"]) if keys else frame["image_id"]
    return frame, grouped_by, notes


def isic_metadata(data_dir: Path, ground_truth: Path, images: pd.Series) -> pd.DataFrame | None:
    """The ISIC metadata CSV beside a ground-truth CSV (image + lesion/patient ids, age, sex, site) that covers most
    of its `images`, renamed to skinml's slice columns; None when none covers any."""

    best, covered = None, 0
    for csv in sorted(data_dir.glob("*.csv")):
        if csv == ground_truth:
            continue
        table = read_table(csv)
        if "image" in table.columns and set(table.columns) - {"image"} <= set(ISIC_METADATA):
            table = table.assign(image=without_suffix(table["image"])).drop_duplicates("image")
            overlap = int(table["image"].isin(images).sum())
            if overlap > covered:
                best, covered = table, overlap
    if best is None:
        return None
    site = "anatom_site_general" if "anatom_site_general" in best else "anatom_site_general_challenge"
    return best.rename(columns={"image": "image_id", "age_approx": "age", site: "localization"})


def read_isic2020(table: pd.DataFrame, csv: Path, data_dir: Path, problems: list[str]) -> Read:
    """ISIC 2020: benign or malignant (`benign_malignant`, else `target` 0/1), else `diagnosis`; grouped by patient."""
    label = next((c for c in ("benign_malignant", "target", "diagnosis") if c in table.columns), None)
    if label is None:
        problems.append(
            f"{csv.name}: missing a label column (benign_malignant, target or diagnosis); found {list(table.columns)}"
        )
        return table, None, []
    empty_cells(table, ("image_name", label), csv, problems)
    dx = table[label].str.strip().str.lower()
    if label == "target":
        dx = dx.map({"0": "benign", "1": "malignant", "0.0": "benign", "1.0": "malignant"})
        for row in table.index[dx.isna() & table["target"].notna()]:
            problems.append(f"{csv.name} row {row + 2}: target={table['target'][row]!r} is not 0 or 1")
    frame = (
        table.rename(columns={"age_approx": "age", "anatom_site_general_challenge": "localization"})
        .assign(image_id=without_suffix(table["image_name"]), dx=dx, file=table["image_name"])
        .drop(columns=["image_name"])
    )
    grouped_by = "patient_id" if "patient_id" in table.columns else None
    frame["lesion_id"] = groups(frame["patient_id"], frame["image_id"]) if grouped_by else frame["image_id"]
    return frame, grouped_by, []


def read_pad_ufes_20(table: pd.DataFrame, csv: Path, data_dir: Path, problems: list[str]) -> Read:
    """PAD-UFES-20: `diagnostic` per `img_id` (a PNG), grouped by patient."""
    if missing(list(table.columns), REQUIRED_COLUMNS["pad-ufes-20"], csv, problems):
        return table, None, []
    empty_cells(table, ("img_id", "patient_id", "diagnostic"), csv, problems)
    frame = table.drop(columns=["lesion_id", "img_id", "diagnostic"], errors="ignore").rename(
        columns={"gender": "sex", "region": "localization", "fitspatrick": "skin_type"}
    )
    return (
        frame.assign(
            image_id=without_suffix(table["img_id"]),
            dx=table["diagnostic"].str.strip().str.lower(),
            file=table["img_id"],
            lesion_id=table["patient_id"],
        ),
        "patient_id",
        [],
    )


def read_plain_csv(table: pd.DataFrame, csv: Path, data_dir: Path, problems: list[str]) -> Read:
    """`image,label[,group]`: image a path relative to the folder or a file stem."""
    if missing(list(table.columns), REQUIRED_COLUMNS["csv"], csv, problems):
        return table, None, []
    empty_cells(table, ("image", "label"), csv, problems)
    image_id = without_suffix(table["image"].astype(str).str.strip())
    grouped_by = "group" if "group" in table.columns else None
    frame = table.drop(columns=["image", "label", "group"], errors="ignore").assign(
        image_id=image_id, dx=table["label"].str.strip().str.lower(), file=table["image"].str.strip()
    )
    frame["lesion_id"] = groups(table["group"], image_id) if grouped_by else image_id
    return frame, grouped_by, []


def read_folder(data_dir: Path, problems: list[str]) -> Read:
    """`DIR/<label>/<image>`: the label is the folder's name, the image id its path below DIR without suffix."""
    rows = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.name.startswith("."):
                relative = path.relative_to(data_dir).as_posix()
                rows.append(
                    {"image_id": relative.rsplit(".", 1)[0], "dx": folder.name.strip().lower(), "file": relative}
                )
    frame = pd.DataFrame(rows, columns=["image_id", "dx", "file"])
    return frame.assign(lesion_id=frame["image_id"]), None, []


READERS: dict[str, Callable[[pd.DataFrame, Path, Path, list[str]], Read]] = {
    "ham10000": read_ham10000,
    "isic": read_isic,
    "isic2020": read_isic2020,
    "pad-ufes-20": read_pad_ufes_20,
    "csv": read_plain_csv,
}


def label_table(data_dir: Path, data_format: str = "auto") -> tuple[str, Path | None]:
    """The layout of a folder and its label CSV (None for the image-folder tree): the one named by `data_format`,
    or the first of LAYOUTS that the folder's files match. DataValidationError when none does, naming the files
    found and the layouts tried."""

    if data_format not in ("auto", *LAYOUTS):
        raise DataValidationError(
            data_dir, [f"unknown data format {data_format!r}; choose auto or one of {list(LAYOUTS)}"]
        )
    heads = {csv: read_head(csv) for csv in sorted(data_dir.glob("*.csv")) if csv.is_file()}
    found = {csv: csv_layout(head) for csv, head in heads.items()}
    wanted = LAYOUTS if data_format == "auto" else (data_format,)
    for layout in wanted:
        if layout == "folder":  # recognised only where no CSV is: a CSV that matches nothing is an error, not classes
            if (data_format == "folder" or not heads) and has_class_folders(data_dir):
                return layout, None
            continue
        tables = [csv for csv, matched in found.items() if matched == layout]
        if tables:
            return layout, max(tables, key=lambda csv: label_columns(heads[csv], layout))
    raise DataValidationError(
        data_dir,
        [
            f"{data_dir}: no layout matches what the folder holds "
            f"({folder_listing(data_dir, heads)}); tried "
            f"{'; '.join(layout_misses(name, heads) for name in wanted)}"
        ],
    )


def folder_listing(data_dir: Path, heads: dict[Path, pd.DataFrame]) -> str:
    """What a folder holds, for an error: its CSV files first, each with its columns, then up to ten other entries."""
    tables = [f"{csv.name} (columns {', '.join(map(str, head.columns)) or 'none'})" for csv, head in heads.items()]
    others = sorted(p for p in data_dir.iterdir() if p not in heads)
    names = [p.name + ("/" if p.is_dir() else "") for p in others[:10]]
    names += [f"and {len(others) - 10} more"] if len(others) > 10 else []
    return ", ".join(tables + names) or "nothing"


def layout_misses(layout: str, heads: dict[Path, pd.DataFrame]) -> str:
    """A layout as tried, with the columns its table needs that the folder's closest CSV lacks."""
    needed = REQUIRED_COLUMNS.get(layout)
    if not needed or not heads:
        return f"{layout} ({DESCRIPTIONS[layout]})"
    lacking = min(([c for c in needed if c not in head.columns] for head in heads.values()), key=len)
    return f"{layout} ({DESCRIPTIONS[layout]}" + (f": no {', '.join(lacking)})" if lacking else ")")
