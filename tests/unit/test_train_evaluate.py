import base64
import json
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytest

from skinml.core.recipe import TrainConfig
from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.data.dataset import DataValidationError, load_dataset
from skinml.data.synthetic import make_synthetic_ham, make_synthetic_isic
from skinml.evaluation.decisions import defers_everything
from skinml.serving.classifier import InvalidImageError
from skinml.stages.evaluate import evaluate
from skinml.stages.train import train
from skinml.tracking.logged_model import LoggedModel

from ..conftest import IMAGE_SIZE

FAMILIARITY_COLUMNS = ["familiarity_distance", "unfamiliar"]


def tiny_config(weights: str, **changes) -> TrainConfig:
    return TrainConfig(
        weights=weights, image_size=IMAGE_SIZE, epochs=8, learning_rate=3e-3, cached_views=2, batch_size=16
    ).replace(**changes)


def b64_images(paths) -> pd.DataFrame:
    return pd.DataFrame({"image": [base64.b64encode(Path(p).read_bytes()).decode() for p in paths]})


def test_train_logs_everything_and_the_model_predicts_base64_images(synthetic_dir, test_weights, tmp_path, subtests):
    result = train(tiny_config(test_weights), synthetic_dir, output=tmp_path / "train.json")
    assert json.loads((tmp_path / "train.json").read_text())["run_id"] == result["run_id"]

    run, client = mlflow.get_run(result["run_id"]), mlflow.MlflowClient()
    test_ids = pd.read_csv(
        mlflow.artifacts.download_artifacts(run_id=result["run_id"], artifact_path="split/manifest.csv")
    )
    with subtests.test("the train run's params, curves, tags and artifacts"):
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert params["epochs"] == "8" and params["weights"] == test_weights and params["image_size"] == "32"
        assert params["learning_rate"] == "0.003" and params["batch_size"] == "16" and params["dropout"] == "0.2"
        assert params["augmentation"] == "rot=0.1,zoom=0.1,shift=0.1,flip=1"
        assert params["loss"] == "categorical_crossentropy"
        for metric in (
            "train_loss",
            "train_accuracy",
            "train_balanced_accuracy",
            "val_loss",
            "val_accuracy",
            "val_balanced_accuracy",
        ):
            history = client.get_metric_history(run.info.run_id, metric)
            assert [m.step for m in history] == list(range(1, 9)), metric
        assert run.data.tags["skinml.split_lesions_crossing_splits"] == "0"
        assert run.info.run_name == "train baseline size=32 lr=0.003 epochs=8 batch=16"
        bookkeeping = ("seconds", "rss", "split_n", "lesions_crossing")
        assert not [name for name in run.data.metrics if any(word in name for word in bookkeeping)]
        assert float(run.data.tags["skinml.train_seconds"]) > 0 and float(run.data.tags["skinml.peak_rss_mb"]) > 0
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")} | {
            a.path for a in client.list_artifacts(run.info.run_id, "split")
        }
        assert {"plots/training_curves.png", "split/manifest.csv"} <= artifacts
        assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.name.startswith("data-")

    with subtests.test("it learns"):
        losses = [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert losses[-1] < losses[0]  # it learns
        assert result["metrics"]["train_accuracy"] > 0.3

    with subtests.test("the logged model predicts base64 images and refuses garbage"):
        model = mlflow.pyfunc.load_model(result["model_uri"])
        paths = load_dataset(synthetic_dir)["path"].tolist()[:5]
        predictions = model.predict(b64_images(paths))
        decisions = LoggedModel.resolve(result["model_uri"]).decisions
        assert list(predictions.columns) == ["label", *CLASSES, "p_positive", "refer", "defer", *FAMILIARITY_COLUMNS]
        deferred = predictions[list(CLASSES)].max(axis=1) < decisions["deferral"]["confidence"]
        if defers_everything(decisions["deferral"]):  # no deferral: only the unfamiliar images are deferred
            deferred = deferred & False
        assert (predictions["defer"] == (deferred | predictions["unfamiliar"])).all()
        np.testing.assert_allclose(predictions[list(CLASSES)].sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(predictions["p_positive"], predictions[["akiec", "bcc", "mel"]].sum(axis=1))
        assert set(predictions["label"]) <= set(CLASSES)
        with pytest.raises(InvalidImageError, match="row 1: 'image' is not valid base64"):
            model.predict(pd.DataFrame({"image": [b64_images(paths[:1])["image"][0], "%%%not base64%%%"]}))
        with pytest.raises(InvalidImageError, match="row 0: not a JPEG/PNG image"):
            model.predict(pd.DataFrame({"image": [base64.b64encode(b"hello").decode()]}))

    # evaluate on the run's own test split
    with subtests.test("evaluation on the run's own test split"):
        report = evaluate(result["model_uri"], output=tmp_path / "eval.json")
        saved = json.loads((tmp_path / "eval.json").read_text())
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "per_class"):
            assert key in saved
        assert set(saved["per_class"]) == set(CLASSES)
        assert set(saved["per_class"]["df"]) == {"precision", "recall", "f1", "auc", "support"}
        assert report["n_images"] == (test_ids["split"] == "test").sum()
        assert report["lesions_crossing_splits"] == "0"
        eval_run = mlflow.get_run(report["run_id"])
        assert eval_run.info.status == "FINISHED"
        assert "test_balanced_accuracy" in eval_run.data.metrics and "test_recall/df" in eval_run.data.metrics
        assert eval_run.info.run_name == "evaluate test baseline size=32 lr=0.003 epochs=8 batch=16"
        assert eval_run.data.tags["skinml.n_images"] == str(report["n_images"])  # a count: a tag, not a metric
        assert "test_n_images" not in eval_run.data.metrics
        low, high = saved["ci95"]["balanced_accuracy"]
        assert 0 <= low <= high <= 1
        assert eval_run.data.metrics["test_macro_auc_ci95_high"] == saved["ci95"]["macro_auc"][1]
        assert eval_run.data.metrics["test_recall_ci95_high/mel"] == saved["ci95"]["recall/mel"][1]
        eval_artifacts = {
            a.path for folder in ("plots", "report") for a in client.list_artifacts(report["run_id"], folder)
        }
        assert {
            "plots/confusion_matrix.png",
            "plots/roc_curves.png",
            "report/classification_report.txt",
            "report/metrics.json",
            "plots/reliability_diagram.png",
            "plots/slices.png",
            "report/slices.csv",
        } <= eval_artifacts
        assert 0 <= report["ece"] <= 1 and "test_ece" in eval_run.data.metrics
        slices = pd.read_csv(
            mlflow.artifacts.download_artifacts(run_id=report["run_id"], artifact_path="report/slices.csv")
        )
        assert {"sex", "age_band", "localization", "dx_type", "dataset"} == set(slices["column"])
        assert slices["small"].all()  # a dozen test images: every slice is flagged small

    # on the run's validation split: the metrics say so
    with subtests.test("evaluation on the validation split"):
        on_val = evaluate(result["model_uri"], split="val")
        val_metrics = mlflow.get_run(on_val["run_id"]).data.metrics
        assert on_val["eval_split"] == "val" and on_val["n_images"] == (test_ids["split"] == "val").sum()
        assert val_metrics["val_balanced_accuracy"] == on_val["balanced_accuracy"] and "val_ece" in val_metrics
        assert not any(name.startswith("test_") for name in val_metrics)

    # and on an external set in the ISIC 2018 one-hot form
    with subtests.test("evaluation on an external ISIC set"):
        external = evaluate(result["model_uri"], data_dir=make_synthetic_isic(tmp_path / "isic", n_per_class=3))
        assert external["n_images"] == 21 and external["eval_split"] == "whole folder"
        assert plt.get_fignums() == []  # every logged plot is freed: none piles up when runs repeat in one process


def test_plain_keras_training_with_backbone_in_the_loop(synthetic_dir, test_weights):
    result = train(tiny_config(test_weights, feature_cache=False, epochs=2), synthetic_dir)
    run = mlflow.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["feature_cache"] == "False"
    assert len(mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_balanced_accuracy")) == 2


def break_missing_column(d: Path) -> str:
    csv = d / "HAM10000_metadata.csv"
    pd.read_csv(csv).drop(columns=["lesion_id"]).to_csv(csv, index=False)
    return "lesion_id"


def break_missing_image(d: Path) -> str:
    victim = sorted((d / "images").iterdir())[3]
    victim.unlink()
    return victim.name


def break_corrupt_jpeg(d: Path) -> str:
    victim = sorted((d / "images").iterdir())[2]
    victim.write_bytes(b"\xff\xd8\xff\xe0 not a real jpeg")
    return victim.name


def break_unknown_class(d: Path) -> str:
    csv = d / "HAM10000_metadata.csv"
    frame = pd.read_csv(csv)
    frame.loc[1, "dx"] = "lentigo"
    frame.to_csv(csv, index=False)
    return "lentigo"


def break_empty_folder(d: Path) -> str:
    for path in sorted(d.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    return "no layout matches what the folder holds"


@pytest.mark.parametrize(
    "breaker", [break_missing_column, break_missing_image, break_corrupt_jpeg, break_unknown_class, break_empty_folder]
)
def test_bad_data_fails_clearly_and_leaves_no_run(breaker, tmp_path):
    data = make_synthetic_ham(tmp_path / "bad", n_per_class=2)
    culprit = breaker(data)
    with pytest.raises(DataValidationError, match=culprit):
        train(tiny_config("none"), data)
    assert mlflow.search_runs(search_all_experiments=True).empty  # the data is read before the run starts


def test_a_run_that_fails_after_it_started_is_marked_failed(synthetic_dir, monkeypatch):
    monkeypatch.setattr(
        "skinml.training.fit.train_with_cache", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("boom"))
    )
    with pytest.raises(RuntimeError, match="boom"):
        train(tiny_config("none"), synthetic_dir)
    assert list(mlflow.search_runs(experiment_names=["skinml"])["status"]) == ["FAILED"]
