"""What the MLflow UI shows of skinml's runs: the shared compare view, the links printed, and a parent run's page."""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from skinml.core.recipe import recipe
from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.tracking.runs import prepare_experiment, publish_view
from skinml.tracking.splits import log_manifest
from skinml.tracking.summary import name_parent, parent_note, run_name, summarize_parent
from skinml.tracking.ui_view import CHAMPION_TAG, run_url, view_key, view_state, view_tag, view_url


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str]) -> list[str]:
        return model_input


def test_the_shared_view_has_the_champion_mark_as_a_column():
    experiment_id = mlflow.set_experiment("ui").experiment_id
    prepare_experiment(experiment_id)
    tags = mlflow.MlflowClient().get_experiment(experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert not [key for key in tags if key.startswith("mlflow.sharedViewState.")]  # no view mixing label sets
    publish_view(experiment_id, CLASSES)
    published = json.loads(mlflow.MlflowClient().get_experiment(experiment_id).tags[view_tag(CLASSES)])
    assert published == view_state(CLASSES)
    columns = published["selectedColumns"]
    assert "tags.`skinml.champion`" in columns and CHAMPION_TAG == "skinml.champion"
    assert "metrics.`test_balanced_accuracy`" in columns and "params.`learning_rate`" in columns


def test_each_label_set_has_a_view_of_its_own_runs_champion_mark_first():
    """A 3-class run is never charted against 7-class runs: each label set's view searches its runs only."""
    client = mlflow.MlflowClient()
    experiment_id = mlflow.set_experiment("label-sets").experiment_id
    links = {}
    for classes in (tuple(CLASSES), ("bkl", "mel", "nv"), ("Bowen's", "naevus")):  # a quote: MLflow has no escape
        with mlflow.start_run() as run:
            pass
        links[classes] = (
            run.info.run_id,
            name_parent(run.info.run_id, run_name("baseline", "/data/ham", classes), classes),
        )
    tags = client.get_experiment(experiment_id).tags
    for classes, (run_id, link) in links.items():
        view = json.loads(tags[view_tag(classes)])
        assert list(mlflow.search_runs([experiment_id], view["searchFilter"])["run_id"]) == [run_id]
        assert f"viewStateShareKey={view_key(classes)}&" in link
        assert view["columnOrder"][:2] == ["tags.`mlflow.runName`", "tags.`skinml.champion`"]
        assert client.get_run(run_id).info.run_name == f"baseline on ham, {len(classes)} classes"
    assert view_key(CLASSES) == "skinml-akiec-bcc-bkl-df-mel-nv-vasc"
    assert view_key([f"c{i}" for i in range(9)]).startswith("skinml-9classes-")
    assert view_key(["Basal cell", "Melanoma"]).startswith("skinml-2classes-")  # a space: a digest instead


def test_links_open_in_the_model_training_mode():
    assert run_url("3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert run_url("3", "abc", "https://mlflow.example.org/") == (
        "https://mlflow.example.org/#/experiments/3/runs/abc?workflowType=machine_learning"
    )
    assert view_url("3", ("bkl", "mel", "nv"), "http://tracking:5000") == (
        "http://tracking:5000/#/experiments/3/runs?viewStateShareKey=skinml-bkl-mel-nv&compareRunsMode=CHART"
        "&workflowType=machine_learning"
    )
    assert run_url("3", "abc", "http://ann:secret@tracking:5000/mlflow/") == (
        "http://tracking:5000/mlflow/#/experiments/3/runs/abc?workflowType=machine_learning"
    )  # no password in links


def evaluation(n_images: int = 20) -> dict:
    """An evaluation result as skinml.stages.evaluate returns it (the keys a parent's summary reads)."""
    return {
        "balanced_accuracy": 0.3947,
        "macro_auc": 0.9012,
        "ece": 0.051,
        "macro_f1": 0.41,
        "n_images": n_images,
        "per_class": {name: {"recall": 0.5} for name in CLASSES},
        "manifest_sha256": "ab" * 32,
        "ci95": {"balanced_accuracy": [0.31, 0.47], "macro_auc": [0.85, 0.94]},
    }


def split_manifest() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": [f"ISIC_{i}" for i in range(6)],
            "lesion_id": [f"L{i // 2}" for i in range(6)],
            "dx": ["nv", "nv", "mel", "mel", "bkl", "bkl"],
            "split": ["train", "train", "val", "val", "test", "test"],
        }
    )


def test_a_parent_run_shows_its_challengers_dataset_model_and_version(tmp_path):
    """The train stage logs the split as a dataset and the model as a logged model; the registry registers it. The
    parent's page lists them once summarize_parent ran (twice: nothing doubles)."""
    client = mlflow.MlflowClient()
    mlflow.set_experiment("skinml")
    weights = tmp_path / "weights" / "mobilenet.weights.h5"
    config = recipe("baseline", {"weights": str(weights), "learning_rate": 3e-4})
    with mlflow.start_run(run_name=config.label()) as parent:
        mlflow.log_param("weights", "weights/mobilenet.weights.h5")  # as `mlflow run -P weights=...` logs it
        with mlflow.start_run(run_name=f"train {config.label()}", nested=True) as train:
            log_manifest(split_manifest(), tmp_path)
            info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=["mlflow"])
        version = mlflow.register_model(info.model_uri, "skinml").version
        trained = {
            "run_id": train.info.run_id,
            "model_uri": info.model_uri,
            "metrics": {"val_balanced_accuracy": 0.4, "val_macro_auc": 0.9},
        }
        registry = {"name": "skinml", "version": str(version), "aliases": ["challenger", "champion"]}
        promotion = {"reason": "v1 is the champion already"}
        for _ in range(2):
            summarize_parent(parent.info.run_id, config, trained, evaluation(), registry=registry, promotion=promotion)

    run, source = client.get_run(parent.info.run_id), client.get_run(train.info.run_id)
    datasets = run.inputs.dataset_inputs
    assert [(d.dataset.name, d.dataset.digest) for d in datasets] == [
        (d.dataset.name, d.dataset.digest) for d in source.inputs.dataset_inputs
    ]
    assert datasets[0].dataset.name.rsplit("-", 1)[1].isalnum() and datasets[0].tags[0].value == "training"
    assert [o.model_id for o in run.outputs.model_outputs] == [info.model_id]
    # what the run page then asks for (its outputs' models, in its experiment) and lists under "Registered models":
    # the versions a logged model's `mlflow.modelVersions` tag names
    [model] = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"attributes.model_id IN ('{info.model_id}')"
    )
    registered = json.loads(model.tags["mlflow.modelVersions"])
    assert ("skinml", str(version)) in {(entry["name"], str(entry["version"])) for entry in registered}
    note = run.data.tags["mlflow.note.content"]
    assert "changed: weights=weights/mobilenet.weights.h5, learning_rate=0.0003." in note
    assert run.data.metrics["test_balanced_accuracy"] == pytest.approx(0.3947)


def test_a_description_keeps_the_configs_path_unless_the_parameter_names_the_same_file(tmp_path):
    weights = str(tmp_path / "mobilenet.weights.h5")
    config = recipe("baseline", {"weights": weights})
    trained = {"run_id": "r1", "model_uri": "models:/m-1", "metrics": {}}
    assert f"changed: weights={weights}." in parent_note(config, trained, evaluation())
    assert f"changed: weights={weights}." in parent_note(config, trained, evaluation(), params={"weights": "other.h5"})
    relative = str(Path(weights).relative_to(Path.cwd()))
    assert f"changed: weights={relative}." in parent_note(config, trained, evaluation(), params={"weights": relative})
