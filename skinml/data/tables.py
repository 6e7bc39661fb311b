"""Reading a data folder's tables: CSVs as text columns, and the one error every data problem raises."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from skinml.core.errors import UserError

log = logging.getLogger("skinml.data")


class DataValidationError(UserError, ValueError):
    """A data folder failed validation; `problems` lists every problem found, each naming its file/row/field. The
    message is one line: the problem, or the first few of them and how many more."""

    def __init__(self, source: Path | str, problems: list[str]):
        self.source = str(source)
        self.problems = problems
        if len(problems) == 1:
            super().__init__(problems[0] if str(source) in problems[0] else f"{source}: {problems[0]}")
            return
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        super().__init__(f"{source}: {len(problems)} problems: {'; '.join(problems[:5])}{more}")


def first_line_not_utf8(path: Path) -> int:
    """The number of the first line of a file that does not decode as UTF-8 (0: every line does)."""
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 0


def read_table(csv: Path, rows: int | None = None) -> pd.DataFrame:
    """A CSV as text columns with lower-cased names; DataValidationError naming the file (and line) it cannot read."""
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""], nrows=rows)
    except UnicodeDecodeError:
        raise DataValidationError(
            csv, [f"{csv}: line {first_line_not_utf8(csv)} is not UTF-8 text (save the file as UTF-8)"]
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = " ".join(str(exc).split())  # pandas' message ends with a newline: one line
        raise DataValidationError(csv, [f"{csv}: not a readable CSV ({reason})"]) from None
    original = {str(c).strip().lower(): str(c).strip() for c in table.columns}
    table = table.rename(columns=lambda c: str(c).strip().lower())
    table.attrs["original_columns"] = original  # to name a column as the file spells it
    return table


def read_head(csv: Path, rows: int = 20) -> pd.DataFrame:
    """The first rows of a CSV, to recognise its layout; its header only when they cannot be read (the reader then
    names the line)."""
    try:
        return read_table(csv, rows=rows)
    except DataValidationError:
        with csv.open("rb") as file:
            header = file.readline().decode("utf-8", "replace")
        return pd.DataFrame(columns=[name.strip().lower() for name in header.split(",")])


def image_list_of(path: str | Path) -> tuple[str, ...]:
    """The image ids of a CSV with an `image_id` column (the audit's label_suspects.csv, or one's own list)."""
    csv = Path(path)
    if not csv.is_file():
        raise DataValidationError(csv, [f"image list {csv} does not exist"])
    table = read_table(csv)
    if "image_id" not in table.columns:
        raise DataValidationError(csv, [f"{csv}: no image_id column (its columns: {list(table.columns)})"])
    ids = table["image_id"].dropna().astype(str).str.strip()
    return tuple(sorted(set(ids.str.replace(r"\.(jpe?g|png)$", "", case=False, regex=True))))


def without_images(frame: pd.DataFrame, excluded: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """`frame` without the images `excluded` names; its attrs' notes say how many were left out (and how many of
    the list it does not hold)."""
    if not excluded:
        return frame
    dropped = frame["image_id"].isin(excluded)
    kept = frame[~dropped].reset_index(drop=True)
    absent = len(set(excluded)) - int(dropped.sum())
    note = f"left out {int(dropped.sum())} image(s) the exclusion list names" + (
        f" ({absent} of its ids are not in the data)" if absent else ""
    )
    kept.attrs = {**frame.attrs, "notes": [*frame.attrs.get("notes", []), note]}
    log.warning(note)
    return kept
