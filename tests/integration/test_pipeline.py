"""End to end: the Prefect pipeline flow on synthetic data, then scheduled retraining's flow on top of it, and what
both left in MLflow."""

import base64
import json
from datetime import date
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from flows.artifacts import figure_rows, result_markdown
from flows.pipeline import pipeline_flow
from flows.retrain import retrain_flow
from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.data.dataset import load_dataset
from skinml.tracking.splits import run_manifest
from skinml.tracking.ui_view import view_key

from ..conftest import IMAGE_SIZE


def flow_run_artifacts(result_key: str, mlflow_run_id: str) -> tuple[str, dict]:
    """(flow run name, {key: data} of its artifacts) of the flow run whose `result_key` artifact names the MLflow
    run: Prefect's local database keeps the runs of earlier tests and sessions."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as prefect:
        results = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[result_key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=20,
        )
        flow_runs = {a.flow_run_id for a in results if mlflow_run_id in str(a.data)}
        assert len(flow_runs) == 1, [a.data for a in results]
        flow_run = prefect.read_flow_run(flow_runs.pop())
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    return flow_run.name, {a.key: a.data for a in artifacts}


def children(parent_run_id: str, experiment: str = "skinml") -> pd.DataFrame:
    return mlflow.search_runs(
        experiment_names=[experiment], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )


def test_pipeline_then_retraining_share_the_challenger_stages(synthetic_dir, test_weights, tmp_path, subtests):
    recipe = {"weights": test_weights, "image_size": IMAGE_SIZE, "epochs": 3, "cached_views": 2, "seed": 7}
    result = pipeline_flow(str(synthetic_dir), "baseline", recipe, output=str(tmp_path / "pipeline.json"))
    assert (tmp_path / "pipeline.json").exists()

    parent = mlflow.get_run(result["parent_run_id"])
    stages, train_run = children(parent.info.run_id), result["train"]["run_id"]
    label, client = "baseline size=32 epochs=3 seed=7", mlflow.MlflowClient()
    with subtests.test("the pipeline's runs, stages and result"):
        assert parent.info.status == "FINISHED"
        assert parent.data.params["epochs"] == "3" and parent.data.params["image_size"] == "32"
        assert "test_balanced_accuracy" in parent.data.metrics and "test_macro_auc" in parent.data.metrics
        assert sorted(stages["tags.skinml.stage"]) == ["audit", "evaluate", "promote", "split", "train"]
        assert set(stages["status"]) == {"FINISHED"}
        assert stages[stages["tags.skinml.stage"] == "split"].iloc[0]["params.seed"] == "7"  # the recipe's seed
        assert result["audit"]["images"] == sum(result["split"][f"n_{part}"] for part in ("train", "val", "test"))

        history = mlflow.MlflowClient().get_metric_history(train_run, "val_loss")
        assert [m.step for m in history] == [1, 2, 3]
        assert result["evaluate"]["n_images"] == result["split"]["n_test"]
        assert result["split"]["lesions_crossing_splits"] == 0
        assert result["registry"] == {"name": "skinml", "version": "1", "aliases": ["challenger", "champion"]}
        assert result["promotion"]["promoted"] is False  # the first version already is the champion

    with subtests.test("the model card states the audit and the split links to it"):
        from skinml.registry.model_card import card_markdown
        from skinml.tracking.logged_model import LoggedModel

        card, _ = card_markdown(LoggedModel.resolve(result["train"]["model_uri"]))
        assert f"Audit run `{result['audit']['run_id']}` (page `audit/audit.html`)" in card
        assert f"{result['audit']['near_duplicate_pairs']} near-duplicate pairs of images" in card
        split_run = mlflow.get_run(result["split"]["run_id"])
        assert split_run.data.tags["skinml.audit_run_id"] == result["audit"]["run_id"]

    # What the MLflow UI shows: the experiment as model training, runs named after their stage and recipe, the
    # headline figures first on the parent with no bookkeeping among them, a description, registry descriptions.
    with subtests.test("what the MLflow UI shows"):
        experiment_tags = client.get_experiment(parent.info.experiment_id).tags
        assert experiment_tags["mlflow.experimentKind"] == "custom_model_development"
        # recipe, data and label set; the champion's parent marked (the first version is the champion)
        named = f"{label} on {synthetic_dir.name}, {len(result['split']['classes'])} classes"
        assert parent.info.run_name == f"★ {named}"
        assert parent.data.tags["skinml.classes"] == ",".join(result["split"]["classes"])
        assert sorted(stages["tags.mlflow.runName"]) == [
            f"audit {synthetic_dir.name}",
            f"evaluate test {label}",
            "promote v1 vs v1",
            "split grouped seed=7",
            f"train {label}",
        ]
        assert sorted(parent.data.metrics)[0] == "test_balanced_accuracy"  # the compare view's first metric
        assert set(parent.data.metrics) == {f"test_recall/{name}" for name in CLASSES} | {
            "test_balanced_accuracy",
            "test_macro_auc",
            "test_ece",
            "test_macro_f1",
            "val_balanced_accuracy",
            "val_macro_auc",
        }
        assert not [m for m in parent.data.metrics if any(w in m for w in ("seconds", "rss", "split_n", "crossing"))]
        # the shared compare view: its columns and charts name metrics, params and tags the parent run has
        key = view_key(result["split"]["classes"])  # the view of this label set's runs
        view = json.loads(client.get_experiment(parent.info.experiment_id).tags[f"mlflow.sharedViewState.{key}"])
        assert view["selectedColumns"][0] == "tags.`skinml.champion`" and parent.data.tags["skinml.champion"] == "yes"
        columns = [c for c in view["selectedColumns"] if not c.startswith("attributes.")]
        assert {c.split(".", 1)[1].strip("`") for c in columns} <= (
            set(parent.data.metrics) | set(parent.data.params) | set(parent.data.tags)
        )  # the champion mark
        assert {c["metricKey"] for c in view["compareRunCharts"] if c["type"] == "BAR"} <= set(parent.data.metrics)
        assert result["mlflow_ui"].endswith(
            f"/#/experiments/{parent.info.experiment_id}/runs?viewStateShareKey={key}"
            "&compareRunsMode=CHART&workflowType=machine_learning"
        )
        note = parent.data.tags["mlflow.note.content"]
        assert f"`{label}`" in note and "**Test** balanced accuracy" in note and "v1" in note
        registered = client.get_registered_model("skinml")
        assert "mlflow models serve" in registered.description and "base64" in registered.description
        version = client.get_model_version("skinml", "1")
        assert f"`{label}`" in version.description and "Promotion: v1 is the champion already" in version.description
        train_history = client.get_metric_history(train_run, "train_balanced_accuracy")
        assert [m.step for m in train_history] == [1, 2, 3]

    # and Prefect's side: flow and task runs named after the recipe and the stage
    with subtests.test("Prefect's flow and task runs are named after the recipe and stage"):
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

        with get_client(sync_client=True) as prefect:
            flows = prefect.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"pipeline {label}"]))
            )
            tasks = {
                run.name for run in prefect.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flows[0].id]}))
            }
        # every stage is a task run of the pipeline's own flow run: its page lists them all
        assert len(flows) == 1 and tasks == {
            f"read {synthetic_dir.name}",
            "audit",
            "split grouped seed=7",
            f"train {label}",
            "evaluate",
            "register skinml",
            "promote skinml",
        }

    # skinml's progress in the Prefect UI: the train task run's own logs hold each epoch's line
    with subtests.test("the train task's logs in Prefect hold each epoch"):
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterTaskRunId
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()  # send what is queued
        with get_client(sync_client=True) as prefect:
            train_task = next(run for run in prefect.read_task_runs() if run.name == f"train {label}")
            logs = prefect.read_logs(log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[train_task.id])))
        lines = [log.message for log in logs if log.name.startswith("skinml")]
        assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == ["epoch 1", "epoch 2", "epoch 3"]

    # Prefect's Artifacts tab of the pipeline's flow run: the figures, the promotion decision, links to MLflow
    with subtests.test("Prefect's Artifacts tab of the pipeline"):
        name, artifacts = flow_run_artifacts("pipeline-result", result["parent_run_id"])
        assert name == f"pipeline {label}" and set(artifacts) == {"audit", "pipeline-result", "pipeline-figures"}
        assert f"# audit of {result['audit']['images']} images" in artifacts["audit"]
        assert "`audit/audit.html` of [the audit run](" in artifacts["audit"]
        summary, tested = artifacts["pipeline-result"], result["evaluate"]
        low, high = tested["ci95"]["balanced_accuracy"]
        assert f"balanced accuracy {tested['balanced_accuracy']:.4f} [{low:.4f}, {high:.4f}]" in summary
        assert f"macro AUC {tested['macro_auc']:.4f}" in summary
        assert result["promotion"]["reason"] in summary and "not promoted" in summary
        ui = "http://127.0.0.1:5000/#"  # a sqlite tracking URI: `mlflow ui`'s address
        for run_id in (result["parent_run_id"], train_run, tested["run_id"], result["promotion"]["promotion_run_id"]):
            assert (
                f"({ui}/experiments/{parent.info.experiment_id}/runs/{run_id}?workflowType=machine_learning)" in summary
            )
        assert f"({ui}/models/skinml/versions/1?workflowType=machine_learning)" in summary
        figures = {row["figure"]: row for row in json.loads(artifacts["pipeline-figures"])}
        assert figures["test balanced accuracy"] == {
            "figure": "test balanced accuracy",
            "value": round(tested["balanced_accuracy"], 4),
            "ci95_low": round(low, 4),
            "ci95_high": round(high, 4),
        }

    with subtests.test("the trained model predicts"):
        model = mlflow.pyfunc.load_model(result["train"]["model_uri"])
        path = load_dataset(synthetic_dir)["path"][0]
        answer = model.predict(pd.DataFrame({"image": [base64.b64encode(Path(path).read_bytes()).decode()]}))
        assert answer["label"][0] in CLASSES

    # Retraining: the champion's recipe, its test split kept, the margin honoured, in the experiment asked for.
    with subtests.test("retraining keeps the champion's recipe, test split and margin"):
        retrained = retrain_flow(str(synthetic_dir), experiment="retraining", promotion_margin=1.0)
        assert retrained["registry"]["version"] == "2" and retrained["promotion"]["margin"] == 1.0
        assert retrained["promotion"]["promoted"] is False  # no model gains 1.0 of balanced accuracy
        stages = children(retrained["parent_run_id"], "retraining")
        assert sorted(stages["tags.skinml.stage"]) == ["evaluate", "promote", "split", "train"]
        assert mlflow.get_run(retrained["parent_run_id"]).info.run_name == f"retrain {date.today()} {named}"
        assert "did not become champion" in retrained["promotion"]["reason"]
        name, artifacts = flow_run_artifacts("retrain-result", retrained["parent_run_id"])
        assert name == f"retrain skinml {date.today()}"
        assert retrained["promotion"]["reason"] in artifacts["retrain-result"]
        assert "/models/skinml/versions/2?workflowType=machine_learning)" in artifacts["retrain-result"]
        assert artifacts["retrain-result"].count("gain ") == 1 and "minus champion" not in artifacts["retrain-result"]
        assert "[registered skinml v2 (challenger)]" in artifacts["retrain-result"]  # the registry after promotion
        for run_id in retrained["promotion"]["evaluation_run_ids"].values():  # each in its own experiment
            experiment_id = mlflow.get_run(run_id).info.experiment_id
            assert f"/experiments/{experiment_id}/runs/{run_id}?" in artifacts["retrain-result"]
        new_train = mlflow.get_run(retrained["train"]["run_id"])
        assert new_train.data.params["seed"] == "7" and new_train.data.params["epochs"] == "3"
        old, new = run_manifest(train_run), run_manifest(retrained["train"]["run_id"])
        assert set(old.loc[old["split"] == "test", "image_id"]) == set(new.loc[new["split"] == "test", "image_id"])
        # unchanged data: every image on its old side, so every feature is in the cache already
        assert old.sort_values("image_id")["split"].tolist() == new.sort_values("image_id")["split"].tolist()

    with subtests.test("a promotion's artifact shows the registry after it"):
        promoted = retrain_flow(str(synthetic_dir), experiment="retraining", promotion_margin=-1.0)
        assert promoted["promotion"]["promoted"] is True and promoted["registry"]["aliases"] == [
            "challenger",
            "champion",
        ]
        _, artifacts = flow_run_artifacts("retrain-result", promoted["parent_run_id"])
        assert "promoted. v3 became champion" in artifacts["retrain-result"]
        assert "[registered skinml v3 (challenger, champion)]" in artifacts["retrain-result"]
        # the champion mark moved: on the promoted retrain's parent now, off the first pipeline's
        assert mlflow.get_run(promoted["parent_run_id"]).info.run_name.startswith("★ retrain ")
        assert mlflow.get_run(result["parent_run_id"]).info.run_name == named


def test_failing_stage_fails_the_pipeline_run(tmp_path):
    from skinml.data.dataset import DataValidationError

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError):
        pipeline_flow(str(tmp_path / "empty"), "baseline", {"weights": "none", "image_size": IMAGE_SIZE})
    runs = mlflow.search_runs(experiment_names=["skinml"])
    assert set(runs["status"]) == {"FAILED"}
    assert list(runs["tags.skinml.stage"]) == ["pipeline"]  # the folder is read before the split run starts


def test_the_result_artifact_renders_whatever_the_result_has():
    """No registry (`model_name=None`), a sweep without retraining, a run MLflow does not know, nothing at all: the
    Markdown says what there is and never fails."""
    with mlflow.start_run(experiment_id=mlflow.create_experiment("artifacts")) as run:
        pass
    tested = {
        "run_id": "no-such-run",
        "balanced_accuracy": 0.5,
        "macro_auc": 0.75,
        "n_images": 14,
        "ci95": {"balanced_accuracy": [0.25, 0.75]},
    }
    unregistered = result_markdown({"parent_run_id": run.info.run_id, "evaluate": tested}, "pipeline")
    assert "balanced accuracy 0.5000 [0.2500, 0.7500], macro AUC 0.7500" in unregistered
    assert "Promotion" not in unregistered and "registered" not in unregistered and "no-such-run" not in unregistered
    assert f"/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning" in unregistered
    sweep = {
        "best_value": 0.61,
        "best_trial": 3,
        "best_params": {"dropout": 0.2, "learning_rate": 0.001},
        "metric": "val_balanced_accuracy",
        "n_complete": 4,
        "n_pruned": 1,
        "baseline_value": 0.0,
        "study_name": "s",
        "parent_run_id": run.info.run_id,
    }
    assert "best val_balanced_accuracy 0.6100 (trial 3: dropout=0.2, learning_rate=0.001); baseline trial 0.0000" in (
        result_markdown(sweep, "sweep")
    )
    retrained = {**sweep, "best_test_balanced_accuracy": 0.5, "best_test_ci95": {"balanced_accuracy": [0.4, 0.6]}}
    assert "**Test**: balanced accuracy 0.5000 [0.4000, 0.6000] (95% intervals" in result_markdown(retrained, "sweep")
    assert [row["figure"] for row in figure_rows(sweep)] == [
        "best trial val_balanced_accuracy",
        "baseline trial val_balanced_accuracy",
    ]
    assert result_markdown({}, "retrain") == "# retrain result" and figure_rows({}) == []
