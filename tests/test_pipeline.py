"""End to end: the Prefect pipeline flow on synthetic data, then scheduled retraining's flow on top of it, and what
both left in MLflow."""

import base64
import json
from datetime import date
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from flows.pipeline import pipeline_flow
from flows.retrain import retrain_flow
from skinml import CLASSES
from skinml.data.dataset import load_dataset
from skinml.manifests import run_manifest

from .conftest import IMAGE_SIZE


def children(parent_run_id: str, experiment: str = "skinml") -> pd.DataFrame:
    return mlflow.search_runs(experiment_names=[experiment],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")


@pytest.mark.slow
def test_pipeline_then_retraining_share_one_challenger_flow(synthetic_dir, test_weights, tmp_path):
    recipe = {"weights": test_weights, "image_size": IMAGE_SIZE, "epochs": 3, "cached_views": 2, "seed": 7}
    result = pipeline_flow(str(synthetic_dir), "baseline", recipe, output=str(tmp_path / "pipeline.json"))
    assert (tmp_path / "pipeline.json").exists()

    parent = mlflow.get_run(result["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["epochs"] == "3" and parent.data.params["image_size"] == "32"
    assert "test/balanced_accuracy" in parent.data.metrics and "test/macro_auc" in parent.data.metrics
    stages = children(parent.info.run_id)
    assert sorted(stages["tags.skinml.stage"]) == ["evaluate", "promote", "split", "train"]
    assert set(stages["status"]) == {"FINISHED"}
    assert stages[stages["tags.skinml.stage"] == "split"].iloc[0]["params.seed"] == "7"  # the recipe's seed

    train_run = result["train"]["run_id"]
    history = mlflow.MlflowClient().get_metric_history(train_run, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert result["evaluate"]["n_images"] == result["split"]["n_test"]
    assert result["split"]["lesions_crossing_splits"] == 0
    assert result["registry"] == {"name": "skinml", "version": "1", "aliases": ["challenger", "champion"]}
    assert result["promotion"]["promoted"] is False  # the first version already is the champion

    # What the MLflow UI shows: the experiment as model training, runs named after their stage and recipe, the
    # headline figures first on the parent with no bookkeeping among them, a description, registry descriptions.
    label = "baseline size=32 epochs=3 seed=7"
    client = mlflow.MlflowClient()
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert parent.info.run_name == label
    assert sorted(stages["tags.mlflow.runName"]) == [f"evaluate test {label}", "promote v1 vs v1",
                                                     "split grouped seed=7", f"train {label}"]
    assert sorted(parent.data.metrics)[0] == "test/balanced_accuracy"  # the compare view's first metric
    assert set(parent.data.metrics) == {f"test_recall/{name}" for name in CLASSES} | {
        "test/balanced_accuracy", "test/macro_auc", "test/ece", "test/macro_f1", "val/balanced_accuracy",
        "val/macro_auc"}
    assert not [m for m in parent.data.metrics if any(w in m for w in ("seconds", "rss", "split_n", "crossing"))]
    # the shared compare view: its columns and charts name metrics and params the parent run has
    view = json.loads(client.get_experiment(parent.info.experiment_id).tags["mlflow.sharedViewState.skinml"])
    columns = [c for c in view["selectedColumns"] if not c.startswith("attributes.")]
    assert {c.split(".", 1)[1].strip("`") for c in columns} <= set(parent.data.metrics) | set(parent.data.params)
    assert {c["metricKey"] for c in view["compareRunCharts"] if c["type"] == "BAR"} <= set(parent.data.metrics)
    assert result["mlflow_ui"].endswith(f"/#/experiments/{parent.info.experiment_id}/runs?viewStateShareKey=skinml"
                                        "&compareRunsMode=CHART&workflowType=machine_learning")
    note = parent.data.tags["mlflow.note.content"]
    assert f"`{label}`" in note and "**Test** balanced accuracy" in note and "v1" in note
    registered = client.get_registered_model("skinml")
    assert "mlflow models serve" in registered.description and "base64" in registered.description
    version = client.get_model_version("skinml", "1")
    assert f"`{label}`" in version.description and "Promotion: v1 is the champion already" in version.description
    train_history = client.get_metric_history(train_run, "train_balanced_accuracy")
    assert [m.step for m in train_history] == [1, 2, 3]
    # and Prefect's side: flow and task runs named after the recipe and the stage
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        flows = {run.name for run in prefect.read_flow_runs()}
        tasks = {run.name for run in prefect.read_task_runs()}
    assert {f"pipeline {label}", f"challenger {label}"} <= flows
    assert {"download", "split grouped seed=7", f"train {label}", "evaluate", "register skinml",
            "promote skinml"} <= tasks

    model = mlflow.pyfunc.load_model(result["train"]["model_uri"])
    path = load_dataset(synthetic_dir)["path"][0]
    answer = model.predict(pd.DataFrame({"image": [base64.b64encode(Path(path).read_bytes()).decode()]}))
    assert answer["label"][0] in CLASSES

    # Retraining: the champion's recipe, its test split kept, the margin honoured, in the experiment asked for.
    retrained = retrain_flow(str(synthetic_dir), experiment="retraining", promotion_margin=1.0)
    assert retrained["registry"]["version"] == "2" and retrained["promotion"]["margin"] == 1.0
    assert retrained["promotion"]["promoted"] is False  # no model gains 1.0 of balanced accuracy
    stages = children(retrained["parent_run_id"], "retraining")
    assert sorted(stages["tags.skinml.stage"]) == ["evaluate", "promote", "split", "train"]
    assert mlflow.get_run(retrained["parent_run_id"]).info.run_name == f"retrain {date.today()} {label}"
    assert "did not become champion" in retrained["promotion"]["reason"]
    new_train = mlflow.get_run(retrained["train"]["run_id"])
    assert new_train.data.params["seed"] == "7" and new_train.data.params["epochs"] == "3"
    old, new = run_manifest(train_run), run_manifest(retrained["train"]["run_id"])
    assert set(old.loc[old["split"] == "test", "image_id"]) == set(new.loc[new["split"] == "test", "image_id"])


@pytest.mark.slow
def test_failing_stage_fails_the_pipeline_run(tmp_path):
    from skinml.data.dataset import DataValidationError

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError):
        pipeline_flow(str(tmp_path / "empty"), "baseline", {"weights": "none", "image_size": IMAGE_SIZE})
    runs = mlflow.search_runs(experiment_names=["skinml"])
    assert set(runs["status"]) == {"FAILED"}
    assert sorted(runs["tags.skinml.stage"]) == ["pipeline", "split"]
