"""Models of any label set, through the same code as HAM10000's seven classes: a three-class model from a plain CSV
layout, a binary one through a label map, each trained, evaluated, registered and answering as the served model."""

import json

import mlflow
import pandas as pd
import pytest

from skinml.app.cli import main
from skinml.data.synthetic import make_synthetic_ham, make_synthetic_set
from skinml.registry.versions import register
from skinml.tracking.logged_model import LoggedModel
from skinml.tracking.model_store import load_model, request_frame

from ..conftest import IMAGE_SIZE

THREE = ("keratosis", "melanoma", "naevus")
# what a model of THREE answers: melanoma is its positive group untold; `refer` where validation chose it; `defer`
# (at least for unfamiliar images) and the familiarity columns always
ANSWERS = tuple(
    ["label", *THREE, "p_positive", *more, "defer", "familiarity_distance", "unfamiliar"] for more in ((), ("refer",))
)
MALIGNANT = {
    "akiec": "malignant",
    "bcc": "malignant",
    "mel": "malignant",
    "bkl": "benign",
    "df": "benign",
    "nv": "benign",
    "vasc": "benign",
}


def tiny(weights: str) -> list[str]:
    return ["--weights", weights, "--image-size", str(IMAGE_SIZE), "--epochs", "3", "--batch-size", "16"]


def run_cli(argv: list[str], capsys) -> tuple[int, dict | None, str]:
    """The exit status, the printed JSON (None when nothing) and stderr of one `skinml` command."""
    status = main(argv)
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out.strip() else None), err


def write_map(path, mapping: dict[str, str]):
    pd.DataFrame({"from": list(mapping), "to": list(mapping.values())}).to_csv(path, index=False)
    return path


def test_a_three_class_model_from_a_plain_csv_trains_evaluates_registers_and_answers(tmp_path, test_weights, capsys):
    data = make_synthetic_set(tmp_path / "clinic", "csv", THREE, n_per_class=8)
    status, trained, _ = run_cli(["train", "--data-dir", str(data), *tiny(test_weights)], capsys)
    assert status == 0 and trained["classes"] == list(THREE)
    uri = trained["model_uri"]
    assert LoggedModel.resolve(uri).classes == THREE
    info = mlflow.models.get_model_info(uri)
    assert [c.name for c in info.signature.outputs.inputs] in ANSWERS

    status, tested, _ = run_cli(["evaluate", "--model-uri", uri], capsys)
    assert status == 0 and set(tested["per_class"]) == set(THREE)
    metrics = mlflow.get_run(tested["run_id"]).data.metrics
    assert {f"test_recall/{name}" for name in THREE} <= set(metrics)

    registered = register(uri, "clinic")
    description = mlflow.MlflowClient().get_registered_model("clinic").description
    assert "3 classes of its training data: keratosis, melanoma, naevus" in description
    served = load_model(f"models:/clinic/{registered['version']}").predict(
        request_frame([p.read_bytes() for p in sorted(data.rglob("*.jpg"))[:3]])
    )
    assert list(served.columns) in ANSWERS and set(served["label"]) <= set(THREE)


def test_a_binary_model_through_a_label_map_and_its_evaluation_elsewhere(tmp_path, test_weights, capsys):
    data = make_synthetic_ham(tmp_path / "ham", n_per_class=8)
    label_map = write_map(tmp_path / "malignant.csv", MALIGNANT)
    status, trained, _ = run_cli(
        ["train", "--data-dir", str(data), "--label-map", str(label_map), *tiny(test_weights)], capsys
    )
    assert status == 0 and trained["classes"] == ["benign", "malignant"]
    run = mlflow.get_run(trained["run_id"])
    assert run.data.params["label_map"].startswith("akiec>malignant,bcc>malignant,bkl>benign")

    # another folder of HAM10000's labels: the model's own map applies, nothing left out
    other = make_synthetic_ham(tmp_path / "other", n_per_class=3, seed=5)
    status, tested, _ = run_cli(["evaluate", "--model-uri", trained["model_uri"], "--data-dir", str(other)], capsys)
    assert status == 0 and set(tested["per_class"]) == {"benign", "malignant"} and tested["n_images"] == 21
    assert "left_out" not in tested
    # the decisions chosen on the training data's validation split, scored on the other folder at the same thresholds
    chosen = mlflow.get_run(trained["run_id"]).data.metrics["val_sens90_threshold"]
    point = tested["decisions"]["operating_points"][0]
    assert tested["decisions"]["positive_classes"] == ["malignant"] and point["threshold"] == chosen
    assert mlflow.get_run(tested["run_id"]).data.metrics["test_sens90_sensitivity"] == point["sensitivity"]

    # a set with a label the model does not know: refused, named, unless a map says what to do with it
    extra = make_synthetic_set(tmp_path / "extra", "csv", ("benign", "malignant", "scc"), n_per_class=4)
    status, _, err = run_cli(["evaluate", "--model-uri", trained["model_uri"], "--data-dir", str(extra)], capsys)
    assert status == 2 and "'scc': 4 image(s)" in err and len(err.strip().splitlines()) == 1
    assert (
        not mlflow.search_runs(
            search_all_experiments=True,
            filter_string="tags.`skinml.stage` = 'evaluate'",
        )
        .query("status != 'FINISHED'")
        .shape[0]
    )
    drop = write_map(tmp_path / "drop.csv", {"scc": ""})
    status, tested, _ = run_cli(
        ["evaluate", "--model-uri", trained["model_uri"], "--data-dir", str(extra), "--label-map", str(drop)], capsys
    )
    assert status == 0 and tested["n_images"] == 8
    assert tested["left_out"] == {"scc (dropped by the label map)": 4}
    report = mlflow.artifacts.load_text(f"runs:/{tested['run_id']}/report/classification_report.txt")
    assert "scc (dropped by the label map): 4 image(s)" in report
    unknown = write_map(tmp_path / "unknown.csv", {"scc": "squamous"})
    status, tested, _ = run_cli(
        ["evaluate", "--model-uri", trained["model_uri"], "--data-dir", str(extra), "--label-map", str(unknown)], capsys
    )
    assert status == 0 and tested["left_out"] == {"squamous": 4}


def test_a_model_of_other_classes_is_registered_under_a_name_of_its_classes(tmp_path, test_weights, capsys):
    data = make_synthetic_ham(tmp_path / "ham", n_per_class=8)
    _, seven, _ = run_cli(["train", "--data-dir", str(data), *tiny(test_weights)], capsys)
    register(seven["model_uri"], "skinml")
    label_map = write_map(tmp_path / "malignant.csv", MALIGNANT)
    _, binary, _ = run_cli(
        ["train", "--data-dir", str(data), "--label-map", str(label_map), *tiny(test_weights)], capsys
    )
    registered = register(binary["model_uri"], "skinml")
    assert registered["name"] == "skinml-benign-malignant" and registered["aliases"] == ["challenger", "champion"]
    assert len(mlflow.MlflowClient().search_model_versions("name='skinml'")) == 1
    assert register(binary["model_uri"], "skinml")["name"] == "skinml-benign-malignant"  # the same name again


@pytest.mark.parametrize(
    "problem, expected",
    [
        ("few", "'rare' has 2 group(s), at least 3 needed"),
        ("no layout", "no layout matches what the folder holds (notes.txt); tried ham10000"),
    ],
)
def test_bad_data_gives_one_line_and_leaves_no_run(tmp_path, test_weights, capsys, problem, expected):
    if problem == "few":
        data = make_synthetic_set(tmp_path / "d", "csv", ("common", "rare"), n_per_class=4, images_per_group=2)
        table = pd.read_csv(data / "labels.csv")
        table.loc[table["label"] == "common", "group"] = table.loc[table["label"] == "common", "image"]
        table.to_csv(data / "labels.csv", index=False)
    else:
        data = tmp_path / "d"
        data.mkdir()
        (data / "notes.txt").write_text("no images here")
    status, _, err = run_cli(["train", "--data-dir", str(data), *tiny(test_weights)], capsys)
    assert status == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert mlflow.search_runs(search_all_experiments=True).empty  # nothing written


@pytest.mark.parametrize("layout", ["isic", "isic2020", "pad-ufes-20", "folder"])
def test_train_needs_no_option_but_the_folder_in_every_layout(tmp_path, test_weights, capsys, layout):
    data = make_synthetic_set(tmp_path / layout, layout, THREE, n_per_class=8)
    status, trained, _ = run_cli(
        ["train", "--data-dir", str(data), "--weights", test_weights, "--image-size", str(IMAGE_SIZE), "--epochs", "1"],
        capsys,
    )
    assert status == 0 and trained["classes"] == list(THREE)
    image = next(p for p in sorted(data.rglob("*")) if p.suffix in (".jpg", ".png"))
    served = load_model(trained["model_uri"]).predict(request_frame([image.read_bytes()]))
    assert list(served.columns) in ANSWERS
    assert mlflow.get_run(trained["run_id"]).data.tags["skinml.classes"] == ",".join(THREE)
    if layout == "folder":  # no lesion named: its evaluation counts no lesions across splits either
        status, tested, _ = run_cli(["evaluate", "--model-uri", trained["model_uri"]], capsys)
        assert mlflow.get_run(tested["run_id"]).data.tags["skinml.lesions_crossing_splits"] == "unknown"
