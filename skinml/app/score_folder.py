"""`skinml predict --data-dir D --output scores.csv`: every image of a folder scored into a CSV table, a chunk of
files at a time (memory flat in the folder's size), with a progress bar. The table is the run's state: a run that
was interrupted resumes with the files it does not hold yet."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from skinml.app.predict import read_image_files, score_images
from skinml.core.errors import UserError
from skinml.data.dataset import images_to_score
from skinml.tracking.model_store import load_model

CHUNK_FILES = 256  # files read, scored and appended to the table together
log = logging.getLogger(__name__)


@dataclass
class FolderScores:
    """What a run of score_folder did: the table, the folder's images, the rows the table already held, the images
    scored now and the problem of each file that could not be ("<file>: <problem>")."""

    output: str
    images: int
    already: int
    scored: int
    problems: list[str] = field(default_factory=list)


def scored_files(output: Path) -> tuple[set[str], list[str] | None]:
    """The files an earlier run's table holds and its columns (None: no table yet). A last line cut short by an
    interruption is removed first."""
    if not output.exists():
        return set(), None
    with output.open("rb+") as table:
        size = table.seek(0, 2)
        table.seek(max(0, size - 1_000_000))
        tail = table.read()
        if not tail.endswith(b"\n"):
            table.truncate(size - len(tail) + tail.rfind(b"\n") + 1)  # 0 where not even the header is whole
    if output.stat().st_size == 0:
        return set(), None
    columns = list(pd.read_csv(output, nrows=0).columns)
    if "file" not in columns:
        raise UserError(f"{output}: not a table of `skinml predict` (no column file); choose another --output")
    return set(pd.read_csv(output, usecols=["file"], dtype=str, keep_default_na=False)["file"]), columns


def score_chunk(
    classifier, chunk: pd.DataFrame, data_dir: Path, answer_columns: list[str]
) -> tuple[pd.DataFrame, dict]:
    """The table's rows for a chunk of the folder's images (file, image_id, true_label, the model's answer, error),
    and the problem of each file that could not be scored, by place in the chunk."""
    paths = [str(data_dir / file) for file in chunk["file"]]
    images, problems = read_image_files(paths)
    scores = score_images(classifier, images, paths, problems) if images else {}
    answer = classifier.answer(np.array(list(scores.values()))) if scores else pd.DataFrame(columns=answer_columns)
    answer.index = list(scores)
    answer = answer.reindex(index=range(len(chunk)), columns=answer_columns)
    errors = [problems[i].removeprefix(f"{paths[i]}: ") if i in problems else "" for i in range(len(chunk))]
    rows = chunk.reset_index(drop=True).rename(columns={"dx": "true_label"})
    return pd.concat([rows, answer, pd.DataFrame({"error": errors})], axis=1), problems


def score_folder(
    model_uri: str,
    data_dir: str | Path,
    output: str | Path,
    *,
    data_format: str = "auto",
    label_map: dict[str, str] | None = None,
) -> FolderScores:
    """Score every image of `data_dir` (any layout, or a folder of images without labels) with the model, appending
    one row per image to the CSV `output`: file (below the folder), image_id, true_label (labelled layouts), label,
    the class probabilities and the model's decisions, and `error` (why a file could not be scored; its other cells
    empty). Files the table already holds are skipped: an interrupted run resumes."""
    data_dir, output = Path(data_dir), Path(output)
    images = images_to_score(data_dir, data_format, label_map)
    done, columns = scored_files(output)
    todo = images[~images["file"].isin(done)]
    result = FolderScores(str(output), len(images), already=len(images) - len(todo), scored=0)
    log.info("%d images in %s; %d already in %s", len(images), data_dir, result.already, output)
    if todo.empty:
        return result
    model = load_model(model_uri, check_requirements=False)  # no 1 s package scan
    classifier = model.unwrap_python_model()
    answer_columns = model.metadata.get_output_schema().input_names()  # the answer's columns, in order
    progress = tqdm(total=len(images), initial=result.already, unit="image", desc="scoring", file=sys.stderr)
    with progress, output.open("a", newline="") as table:
        for start in range(0, len(todo), CHUNK_FILES):
            rows, problems = score_chunk(classifier, todo.iloc[start : start + CHUNK_FILES], data_dir, answer_columns)
            if columns is None:
                columns = list(rows.columns)
                table.write(rows.iloc[:0].to_csv(index=False))
            elif list(rows.columns) != columns:
                raise UserError(
                    f"{output} holds other columns than this model's answer for this folder (another model or "
                    "folder wrote it); choose another --output"
                )
            table.write(rows.to_csv(index=False, header=False))
            table.flush()  # whole chunks only: what an interruption leaves is resumed from
            for problem in problems.values():
                progress.write(f"skinml predict: error: {problem}", file=sys.stderr)
            result.problems += list(problems.values())
            result.scored += len(rows) - len(problems)
            progress.update(len(rows))
    return result
