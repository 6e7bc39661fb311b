"""Label maps: a CSV `from,to` that renames, merges or drops the labels of a data set (an empty `to` drops)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skinml.data.tables import DataValidationError, read_table


def read_label_map(path: str | Path) -> dict[str, str]:
    """The mapping of a label-map CSV, lower-cased (`to` empty: drop); DataValidationError naming file and row."""

    path = Path(path)
    if not path.is_file():
        raise DataValidationError(path, [f"label map {path} does not exist"])
    table = read_table(path)
    if not {"from", "to"} <= set(table.columns):
        raise DataValidationError(
            path, [f"{path.name}: a label map needs the columns from,to; found {list(table.columns)}"]
        )
    mapping: dict[str, str] = {}
    problems = []
    for row, (source, target) in enumerate(zip(table["from"], table["to"]), start=2):
        source = "" if pd.isna(source) else str(source).strip().lower()
        target = "" if pd.isna(target) else str(target).strip().lower()
        if not source:
            problems.append(f"{path.name} row {row}: empty `from`")
        elif source in mapping and mapping[source] != target:
            problems.append(f"{path.name} row {row}: {source!r} is mapped twice ({mapping[source]!r}, {target!r})")
        else:
            mapping[source] = target
    if problems:
        raise DataValidationError(path, problems)
    return mapping


def label_map_of(path: str | Path | None) -> dict[str, str] | None:
    """The mapping of a --label-map file (None without one)."""
    return read_label_map(path) if path else None


def apply_label_map(frame: pd.DataFrame, mapping: dict[str, str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The frame with its `dx` labels mapped (names match case-insensitively; labels the map does not name stay),
    without the images whose label maps to nothing, and the number of images dropped per original label."""
    if not mapping:
        return frame, {}
    mapping = {str(k).strip().lower(): str(v).strip().lower() for k, v in mapping.items()}
    mapped = frame["dx"].map(lambda label: mapping.get(label, label))
    dropped = mapped == ""
    counts = frame.loc[dropped, "dx"].value_counts()
    return (
        frame.assign(dx=mapped)[~dropped].reset_index(drop=True),
        {str(label): int(count) for label, count in counts.items()},
    )
