"""`skinml audit`, a split of data without groups, and the leak check of `skinml evaluate --data-dir`, run as a
user would, on folders with planted duplicates."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from PIL import Image

from skinml.app.cli import main

from ..conftest import IMAGE_SIZE
from ..planted import COPIES, copied, planted_set, textured


def test_audit_command_writes_its_page_and_logs_its_run(tmp_path, test_weights, capsys):
    planted_set(tmp_path / "ham")
    assert main(["audit", "--data-dir", str(tmp_path / "ham"), "--weights", test_weights, "--output", "out"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["exact_duplicate_pairs"] == 1 and summary["near_duplicate_pairs"] == len(COPIES) - 1
    assert summary["missed_duplicate_pairs"] == len(COPIES) and "label_suspects" in summary
    assert summary["page"] == "out/audit.html" and Path("out/audit.html").read_text().count("<img") > 2 * len(COPIES)
    assert len(pd.read_csv("out/duplicates.csv")) == len(COPIES)
    run = mlflow.get_run(summary["run_id"])
    assert run.data.tags["skinml.stage"] == "audit" and run.data.metrics["near_duplicate_pairs"] == len(COPIES) - 1
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(summary["run_id"], "audit")}
    assert {"audit/audit.html", "audit/duplicates.csv", "audit/groups.csv", "audit/label_suspects.csv"} <= logged


def test_a_folder_without_groups_is_split_by_its_duplicates(tmp_path, capsys):
    pairs = planted_set(tmp_path / "tree", layout="folder", n=45)
    assert main(["split", "--data-dir", str(tmp_path / "tree"), "--output", "m.csv"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["strategy"] == f"grouped, the data names no group: {len(COPIES)} groups of near-duplicates"
    side = pd.read_csv("m.csv").set_index("image_id")["split"]
    assert (side[pairs["image_id"]].to_numpy() == side[pairs["copy_id"]].to_numpy()).all()
    tags = mlflow.get_run(summary["run_id"]).data.tags
    assert tags["skinml.split_grouped_by"] == "near-duplicate groups (the data has no group column)"
    assert tags["skinml.duplicate_groups"] == str(len(COPIES))


def test_merge_near_duplicates_joins_the_data_s_groups(tmp_path, capsys):
    pairs = planted_set(tmp_path / "ham", n=45)
    assert main(["split", "--data-dir", str(tmp_path / "ham"), "--output", "m.csv", "--merge-near-duplicates"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["strategy"] == f"grouped, {len(COPIES)} of the data's groups joined by near-duplicates"
    group = pd.read_csv("m.csv").set_index("image_id")["lesion_id"]
    assert (group[pairs["image_id"]].to_numpy() == group[pairs["copy_id"]].to_numpy()).all()


def test_evaluate_names_the_external_images_the_model_trained_on(tmp_path, test_weights, capsys, caplog):
    planted_set(tmp_path / "ham", n=45)
    train = ["train", "--data-dir", str(tmp_path / "ham"), "--weights", test_weights, "--image-size", str(IMAGE_SIZE)]
    assert main([*train, "--epochs", "1", "--cached-views", "1", "--output", "train.json"]) == 0
    trained = json.loads(Path("train.json").read_text())
    manifest = pd.read_csv(
        mlflow.artifacts.download_artifacts(run_id=trained["run_id"], artifact_path="split/manifest.csv")
    )
    seen = manifest[(manifest["split"] == "train") & manifest["image_id"].str.startswith("img")].head(3)
    for row in seen.itertuples():  # a rotated copy of three training images, and three images never seen
        (tmp_path / "ext" / row.dx).mkdir(parents=True, exist_ok=True)
        with Image.open(tmp_path / "ham" / "images" / f"{row.image_id}.jpg") as image:
            copied(image.convert("RGB"), "rotate").save(tmp_path / "ext" / row.dx / f"again-{row.image_id}.jpg")
        textured(np.random.default_rng(row.Index)).save(tmp_path / "ext" / row.dx / f"new-{row.image_id}.jpg")
    capsys.readouterr()
    assert main(["evaluate", "--model-uri", trained["model_uri"], "--data-dir", str(tmp_path / "ext")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["leaked_images"]) == sorted(f"{r.dx}/again-{r.image_id}" for r in seen.itertuples())
    metrics = mlflow.get_run(result["run_id"]).data.metrics
    assert metrics["test_leaked_images"] == 3 and "test_without_leaks_accuracy" in metrics
    leaks = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=result["run_id"], artifact_path="report/leaks.csv"))
    assert sorted(leaks["training_image"]) == sorted(seen["image_id"])
    assert result["test_leaked_images"] == 3 and "test_without_leaks_balanced_accuracy" in result

    (tmp_path / "ham").rename(tmp_path / "moved")  # the training folder gone: evaluated, without a leak check
    assert main(["evaluate", "--model-uri", trained["model_uri"], "--data-dir", str(tmp_path / "ext")]) == 0
    assert "leaked_images" not in json.loads(capsys.readouterr().out)
    assert "no leak check: the model's training folder" in caplog.text


def test_an_exclusion_list_leaves_its_images_out_and_stays_in_the_recipe(tmp_path, capsys):
    from skinml.app.cli import build_parser
    from skinml.app.commands import training_config
    from skinml.core.recipe import TrainConfig

    planted_set(tmp_path / "ham", n=45)
    pd.DataFrame({"image_id": ["img001", "img002", "not-there"], "given": "mel"}).to_csv("drop.csv", index=False)
    split = ["split", "--data-dir", str(tmp_path / "ham"), "--output", "m.csv"]
    assert main([*split, "--exclude-images", "drop.csv"]) == 0
    summary = json.loads(capsys.readouterr().out)
    manifest = pd.read_csv("m.csv")
    assert len(manifest) == 45 + len(COPIES) - 2 and not manifest["image_id"].isin(["img001", "img002"]).any()
    assert (
        "left out 2 image(s) the exclusion list names (1 of its ids are not in the data)"
        in (mlflow.get_run(summary["run_id"]).data.tags["skinml.data_notes"])
    )
    config = training_config(build_parser().parse_args(["train", "--exclude-images", "drop.csv"]))
    assert config.exclude_images == ("img001", "img002", "not-there") and config.params()["excluded_images"] == 3
    assert TrainConfig.from_dict(config.to_dict()) == config  # retraining reads it back without the file
    assert main(["split", "--data-dir", str(tmp_path / "ham"), "--exclude-images", "nothing.csv"]) == 2
    assert "image list nothing.csv does not exist" in capsys.readouterr().err
