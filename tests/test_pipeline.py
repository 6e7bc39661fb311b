"""End to end: the Prefect pipeline flow on synthetic data, then what it left in MLflow."""

import base64
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from flows.pipeline import pipeline
from skinml import CLASSES
from skinml.config import TrainConfig
from skinml.data.dataset import load_dataset

from .conftest import IMAGE_SIZE


@pytest.mark.slow
def test_prefect_pipeline_runs_every_stage_under_one_parent_run(synthetic_dir, test_weights, tmp_path):
    config = TrainConfig(weights=test_weights, image_size=IMAGE_SIZE, epochs=3, cached_views=2)
    result = pipeline(str(synthetic_dir), config, output=str(tmp_path / "pipeline.json"))
    assert (tmp_path / "pipeline.json").exists()

    parent = mlflow.get_run(result["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["epochs"] == "3" and parent.data.params["image_size"] == "32"
    assert "test_balanced_accuracy" in parent.data.metrics and "test_macro_auc" in parent.data.metrics
    children = mlflow.search_runs(experiment_names=["skinml"],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(children["tags.skinml.stage"]) == ["evaluate", "promote", "split", "train"]
    assert set(children["status"]) == {"FINISHED"}

    train_run = result["train"]["run_id"]
    history = mlflow.MlflowClient().get_metric_history(train_run, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert result["evaluate"]["n_images"] == result["split"]["n_test"]
    assert result["split"]["lesions_crossing_splits"] == 0
    assert result["registry"] == {"name": "skinml", "version": "1", "aliases": ["challenger", "champion"]}
    assert result["promotion"]["promoted"] is False  # the first version already is the champion

    model = mlflow.pyfunc.load_model(result["train"]["model_uri"])
    path = load_dataset(synthetic_dir)["path"][0]
    answer = model.predict(pd.DataFrame({"image": [base64.b64encode(Path(path).read_bytes()).decode()]}))
    assert answer["label"][0] in CLASSES


@pytest.mark.slow
def test_failing_stage_fails_the_pipeline_run(tmp_path):
    from skinml.data.dataset import DataValidationError

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError):
        pipeline(str(tmp_path / "empty"), TrainConfig(weights="none", image_size=IMAGE_SIZE))
    runs = mlflow.search_runs(experiment_names=["skinml"])
    assert set(runs["status"]) == {"FAILED"}
    assert sorted(runs["tags.skinml.stage"]) == ["pipeline", "split"]
