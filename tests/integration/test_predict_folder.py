"""`skinml predict --data-dir D --output scores.csv`: a folder scored into a table, resumed after an interruption."""

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from skinml.app.cli import main
from skinml.app.predict import predict_files
from skinml.core.recipe import TrainConfig
from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.data.dataset import load_dataset
from skinml.stages.train import train

from ..conftest import IMAGE_SIZE


def test_predict_scores_a_folder_into_a_table_and_resumes(synthetic_dir, test_weights, tmp_path, capsys, subtests):
    model_uri = train(
        TrainConfig(
            weights=test_weights, image_size=IMAGE_SIZE, epochs=1, cached_views=1, target_balanced_accuracy=0.05
        ),
        synthetic_dir,
    )["model_uri"]
    data = load_dataset(synthetic_dir)
    full = tmp_path / "scores.csv"

    with subtests.test("a labelled folder: one row per image, as predict answers for its files"):
        assert main(["predict", "--data-dir", str(synthetic_dir), "--output", str(full), "--model-uri", model_uri]) == 0
        table = pd.read_csv(full)
        assert len(table) == len(data) == 84
        assert list(table.columns[:5]) == ["file", "image_id", "true_label", "label", CLASSES[0]]
        assert {"p_positive", "refer", "defer", "familiarity_distance", "unfamiliar", "error"} <= set(table.columns)
        assert table["error"].isna().all()
        by_file = table.set_index("image_id").loc[data["image_id"]]
        assert by_file["true_label"].tolist() == data["dx"].tolist()
        answer, problems = predict_files(model_uri, data["path"].tolist())
        assert problems == []
        np.testing.assert_allclose(by_file[list(CLASSES)].to_numpy(), answer[list(CLASSES)].to_numpy(), atol=1e-6)
        assert by_file["label"].tolist() == answer["label"].tolist()

    with subtests.test("an interrupted run resumes: every image once, the same rows"):
        cut = tmp_path / "cut.csv"
        lines = full.read_text().splitlines(keepends=True)
        cut.write_text("".join(lines[:31]) + lines[31][:25])  # the header, 30 rows and a row cut short
        shutil.copy(tmp_path / "scores.csv.json", tmp_path / "cut.csv.json")  # the folder and model it holds
        capsys.readouterr()
        assert main(["predict", "--data-dir", str(synthetic_dir), "--output", str(cut), "--model-uri", model_uri]) == 0
        resumed = pd.read_csv(cut)
        assert resumed["file"].is_unique and len(resumed) == 84
        pd.testing.assert_frame_equal(
            resumed.sort_values("file").reset_index(drop=True), table.sort_values("file").reset_index(drop=True)
        )
        assert main(["predict", "--data-dir", str(synthetic_dir), "--output", str(cut), "--model-uri", model_uri]) == 0
        assert len(pd.read_csv(cut)) == 84  # nothing left to do: nothing added

    with subtests.test("a folder of images without labels; a bad file is named and kept as a row"):
        plain = tmp_path / "plain"
        (plain / "2021").mkdir(parents=True)  # images at the top: unlabelled, sub-folders included
        for path in data["path"][:4]:
            shutil.copy(path, plain)
        shutil.copy(data["path"][4], plain / "2021")
        (plain / "broken.jpg").write_bytes(b"not an image")
        output = tmp_path / "plain.csv"
        capsys.readouterr()
        assert main(["predict", "--data-dir", str(plain), "--output", str(output), "--model-uri", model_uri]) == 2
        err = capsys.readouterr().err
        assert f"skinml predict: error: {plain / 'broken.jpg'}: not a JPEG/PNG image" in err
        assert "1 of 6 images could not be scored" in err
        rows = pd.read_csv(output).set_index("file")
        assert (
            "true_label" not in rows.columns and len(rows) == 6 and f"2021/{Path(data['path'][4]).name}" in rows.index
        )
        assert rows.loc["broken.jpg", "error"] == "not a JPEG/PNG image" and pd.isna(rows.loc["broken.jpg", "label"])
        assert rows.drop(index="broken.jpg")["label"].isin(CLASSES).all()
        capsys.readouterr()
        assert main(["predict", "--data-dir", str(plain), "--output", str(output), "--model-uri", model_uri]) == 2
        assert "1 of 6 images could not be scored" in capsys.readouterr().err  # kept, not retried, still said
        assert len(pd.read_csv(output)) == 6

    with subtests.test("a table of another folder or model, another file, or a table inside the data: refused"):
        before = full.read_bytes()
        other_model = tmp_path / "other.csv"  # the same folder's table, by another model
        other_model.write_bytes(before)
        note = json.loads((tmp_path / "scores.csv.json").read_text())
        (tmp_path / "other.csv.json").write_text(json.dumps({**note, "model_uuid": "another"}))
        refusals = [
            (plain, full, model_uri, "not of this model for this folder"),
            (synthetic_dir, other_model, model_uri, "not of this model for this folder"),
            (synthetic_dir, synthetic_dir / "HAM10000_metadata.csv", model_uri, "inside --data-dir"),
            (plain, tmp_path / "request.txt", model_uri, "is not a table of `skinml predict`"),
            (plain, tmp_path / "missing" / "scores.csv", model_uri, "not a file in an existing folder"),
        ]
        (tmp_path / "request.txt").write_text("a file of the user's")
        for folder, table, uri, problem in refusals:
            capsys.readouterr()
            assert main(["predict", "--data-dir", str(folder), "--output", str(table), "--model-uri", uri]) == 2
            assert problem in capsys.readouterr().err, problem
        assert full.read_bytes() == before and (tmp_path / "request.txt").read_text() == "a file of the user's"

    with subtests.test("`mlflow models predict`: a batch call, no request limit"):
        request = tmp_path / "request.json"
        images = [base64.b64encode(Path(path).read_bytes()).decode() for path in data["path"]]
        request.write_text(json.dumps({"dataframe_split": {"columns": ["image"], "data": [[i] for i in images]}}))
        command = [sys.executable, "-m", "mlflow", "models", "predict", "-m", model_uri, "-i", str(request)]
        command += ["-t", "json", "-o", str(tmp_path / "answer.json"), "--env-manager", "local"]
        done = subprocess.run(
            command, env={**os.environ, "SKINML_SERVE_MAX_ROWS": "16"}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        answer = json.loads((tmp_path / "answer.json").read_text())["predictions"]
        assert [row["label"] for row in answer] == by_file["label"].tolist()  # 84 rows, over the server's 16
