"""`skinml predict --data-dir D --output scores.csv`: every image of a folder scored into a CSV table, a chunk of
files at a time (memory flat in the folder's size), with a progress bar. The table is the run's state: a run that
was interrupted resumes with the files it does not hold yet. Beside it, `scores.csv.json` says which folder and
which model it holds, so that a run for another folder or model never appends to it."""

from __future__ import annotations

import json
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
from skinml.serving.classifier import SkinLesionClassifier
from skinml.tracking.model_store import load_model

CHUNK_FILES = 256  # files read, scored and appended to the table together
log = logging.getLogger(__name__)


@dataclass
class FolderScores:
    """What a run of score_folder did: the table, the folder's images, the rows the table already held, the images
    scored now, and the problem of each file of the table that could not be scored ("<file>: <problem>")."""

    output: str
    images: int
    already: int
    scored: int
    problems: list[str] = field(default_factory=list)


def note_of(output: Path) -> Path:
    """The note beside a table: the folder and the model it holds."""
    return output.with_name(output.name + ".json")


def check_output(output: Path, data_dir: Path) -> None:
    """Refuse an output the command cannot own: inside the data folder (it would become part of the data), a folder,
    or in a folder that does not exist."""
    if output.resolve().is_relative_to(data_dir.resolve()):
        raise UserError(f"--output {output} is inside --data-dir {data_dir}: write the table outside the data")
    if output.is_dir() or not output.parent.is_dir():
        raise UserError(f"--output {output}: not a file in an existing folder")


def scored_files(output: Path, holds: dict) -> tuple[pd.DataFrame, list[str] | None]:
    """The file and error columns of an earlier run's table for the same folder and model (what `holds` says), and
    its columns; (empty, None) when there is no table yet. A last line cut short by an interruption is removed."""
    note, nothing = note_of(output), (pd.DataFrame(columns=["file", "error"]), None)
    if not output.exists() or output.stat().st_size == 0:
        return nothing
    try:
        earlier = json.loads(note.read_text())
    except (OSError, ValueError):
        raise UserError(
            f"{output} exists and is not a table of `skinml predict` (no readable {note.name}); choose another --output"
        ) from None
    if [earlier.get("data_dir"), earlier.get("model_uuid")] != [holds["data_dir"], holds["model_uuid"]]:
        raise UserError(
            f"{output} holds the answers of {earlier.get('model_uri')} (model {earlier.get('model_uuid')}) for "
            f"{earlier.get('data_dir')}, not of this model for this folder; choose another --output"
        )
    with output.open("rb+") as table:
        size = table.seek(0, 2)
        table.seek(max(0, size - 1_000_000))
        tail = table.read()
        if not tail.endswith(b"\n"):
            table.truncate(size - len(tail) + tail.rfind(b"\n") + 1)  # 0 where not even the header is whole
    if output.stat().st_size == 0:
        return nothing
    columns = list(pd.read_csv(output, nrows=0).columns)
    return pd.read_csv(output, usecols=["file", "error"], dtype=str, keep_default_na=False), columns


def score_chunk(
    classifier: SkinLesionClassifier, chunk: pd.DataFrame, *, data_dir: Path, answer_columns: list[str]
) -> tuple[pd.DataFrame, dict[int, str]]:
    """The table's rows for a chunk of the folder's images (file, image_id, true_label, the model's answer, error),
    and the problem of each file that could not be scored, by place in the chunk."""
    paths = [str(data_dir / file) for file in chunk["file"]]
    images, problems = read_image_files(paths)
    scores, undecodable = score_images(classifier, images, paths) if images else ({}, {})
    problems.update(undecodable)
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
    empty). Files the table already holds are skipped: an interrupted run resumes; a row with an error is kept (delete
    it to score that file again)."""
    data_dir, output = Path(data_dir), Path(output)
    check_output(output, data_dir)
    images = images_to_score(data_dir, data_format, label_map)
    model = load_model(model_uri, check_requirements=False)  # no 1 s package scan
    holds = {"data_dir": str(data_dir.resolve()), "model_uri": model_uri, "model_uuid": model.metadata.model_uuid}
    done, columns = scored_files(output, holds)
    todo = images[~images["file"].isin(done["file"])]
    failed = done[(done["error"] != "") & done["file"].isin(images["file"])]
    result = FolderScores(str(output), len(images), already=len(images) - len(todo), scored=0)
    result.problems = [f"{data_dir / file}: {error}" for file, error in zip(failed["file"], failed["error"])]
    log.info("%d images in %s; %d already in %s", len(images), data_dir, result.already, output)
    if todo.empty:
        return result
    classifier = model.unwrap_python_model()
    answer_columns = model.metadata.get_output_schema().input_names()  # the answer's columns, in order
    note_of(output).write_text(json.dumps(holds, indent=2))
    progress = tqdm(total=len(images), initial=result.already, unit="image", desc="scoring", file=sys.stderr)
    with progress, output.open("a", newline="") as table:
        for start in range(0, len(todo), CHUNK_FILES):
            chunk = todo.iloc[start : start + CHUNK_FILES]
            rows, problems = score_chunk(classifier, chunk, data_dir=data_dir, answer_columns=answer_columns)
            if columns is None:
                columns = list(rows.columns)
                table.write(rows.iloc[:0].to_csv(index=False))
            table.write(rows.to_csv(index=False, header=False))
            table.flush()  # whole chunks only: what an interruption leaves is resumed from
            for problem in problems.values():
                progress.write(f"skinml predict: error: {problem}", file=sys.stderr)
            result.problems += list(problems.values())
            result.scored += len(rows) - len(problems)
            progress.update(len(rows))
    return result
