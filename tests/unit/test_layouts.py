"""The layouts skinml reads, recognised from the folder; label maps; the one-line errors of bad label tables."""

import json
from pathlib import Path

import pandas as pd
import pytest

from skinml.app.cli import main
from skinml.data.dataset import DataValidationError, load_dataset
from skinml.data.label_map import read_label_map
from skinml.data.layouts import LAYOUTS
from skinml.data.synthetic import make_synthetic_ham, make_synthetic_set

THREE = ("keratosis", "melanoma", "naevus")


@pytest.mark.parametrize(
    "layout, grouped_by",
    [
        ("ham10000", "lesion_id"),
        ("isic", "lesion_id"),
        ("isic2020", "patient_id"),
        ("pad-ufes-20", "patient_id"),
        ("csv", "group"),
        ("folder", None),
    ],
)
def test_each_layout_is_recognised_with_its_labels_and_groups(tmp_path, layout, grouped_by):
    if layout == "ham10000":
        data, classes = (
            make_synthetic_ham(tmp_path / layout, n_per_class=4),
            ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"),
        )
    else:
        data, classes = make_synthetic_set(tmp_path / layout, layout, THREE, n_per_class=4), THREE
    frame = load_dataset(data)
    assert frame.attrs["data_format"] == layout and frame.attrs["grouped_by"] == grouped_by
    assert frame["dx"].value_counts().to_dict() == {c: 4 for c in classes}
    assert all(Path(p).is_file() for p in frame["path"])
    groups_per_class = frame.groupby("dx")["lesion_id"].nunique()
    assert (groups_per_class == (4 if grouped_by is None else 2)).all()
    assert load_dataset(data, data_format=layout).equals(frame)
    assert set(LAYOUTS) >= {layout}


def test_slices_come_with_the_layout(tmp_path):
    pad = load_dataset(make_synthetic_set(tmp_path / "pad", "pad-ufes-20", ("BCC", "nev"), n_per_class=3))
    assert {"age", "sex", "skin_type"} <= set(pad.columns) and set(pad["dx"]) == {"bcc", "nev"}
    assert all(p.endswith(".png") for p in pad["path"])
    isic = load_dataset(make_synthetic_set(tmp_path / "isic", "isic", THREE, n_per_class=3))
    assert {"age", "sex"} <= set(isic.columns)


def isic2019(dest: Path) -> Path:
    """An ISIC 2019 Task 1 style folder: AK and SCC among eight classes, UNK never 1, 0.0/1.0 values."""
    data = make_synthetic_set(dest, "isic", ("mel", "nv", "ak", "scc"), n_per_class=4)
    truth = pd.read_csv(data / "GroundTruth.csv")
    truth = truth.assign(BCC=0.0, BKL=0.0, DF=0.0, VASC=0.0, UNK=0.0)
    truth.to_csv(data / "GroundTruth.csv", index=False)
    return data


def test_isic2019_drops_a_class_column_that_is_never_one_with_a_note(tmp_path, caplog):
    frame = load_dataset(isic2019(tmp_path / "isic2019"))
    assert sorted(set(frame["dx"])) == ["ak", "mel", "nv", "scc"]
    assert any("['BCC', 'BKL', 'DF', 'VASC', 'UNK'] never 1" in note for note in frame.attrs["notes"])
    assert "never 1" in caplog.text


def test_a_label_map_renames_merges_and_drops_with_counts(tmp_path):
    data = isic2019(tmp_path / "isic2019")
    (tmp_path / "map.csv").write_text("from,to\nAK,akiec\nMEL,malignant\nSCC,malignant\nnv,\n")
    mapping = read_label_map(tmp_path / "map.csv")
    assert mapping == {"ak": "akiec", "mel": "malignant", "scc": "malignant", "nv": ""}
    frame = load_dataset(data, label_map=mapping)
    assert frame["dx"].value_counts().to_dict() == {"malignant": 8, "akiec": 4}
    assert frame.attrs["label_counts_dropped"] == {"nv": 4}


def test_a_plain_csv_may_name_images_by_stem_in_any_sub_folder(tmp_path):
    data = make_synthetic_set(tmp_path / "plain", "csv", THREE, n_per_class=3)
    table = pd.read_csv(data / "labels.csv").drop(columns=["group"])
    table["image"] = table["image"].str.replace("images/", "").str.replace(".jpg", "")
    table.to_csv(data / "labels.csv", index=False)
    frame = load_dataset(data)
    assert len(frame) == 9 and frame.attrs["grouped_by"] is None
    assert (frame["lesion_id"] == frame["image_id"]).all()


@pytest.mark.parametrize(
    "problem, message",
    [
        ("no label column", "labels.csv: missing required column(s) ['label']"),
        ("image absent", "labels.csv row 3: image images/IMG_00000001.jpg not found"),
        ("empty label", "labels.csv row 4: empty label"),
        (
            "forced layout",
            "no layout matches what the folder holds (labels.csv (columns image, label, group), images/); "
            "tried ham10000 (a CSV with image_id, dx, lesion_id: no image_id, dx, lesion_id)",
        ),
        ("label map", "map.csv row 3: 'a' is mapped twice"),
        ("not one-hot", "GroundTruth.csv row 2: MELANOMA='x' is not 0 or 1"),
    ],
)
def test_bad_label_tables_give_one_line_naming_file_and_row(tmp_path, capsys, problem, message):
    layout = "isic" if problem == "not one-hot" else "csv"
    data = make_synthetic_set(tmp_path / "d", layout, THREE, n_per_class=3)
    argv = ["split", "--data-dir", str(data), "--output", str(tmp_path / "split.csv")]
    table = pd.read_csv(data / "labels.csv") if layout == "csv" else None
    if problem == "no label column":
        table.drop(columns=["label"]).to_csv(data / "labels.csv", index=False)
    elif problem == "image absent":
        (data / "images" / "IMG_00000001.jpg").unlink()
    elif problem == "empty label":
        table.loc[2, "label"] = ""
        table.to_csv(data / "labels.csv", index=False)
    elif problem == "forced layout":
        argv += ["--data-format", "ham10000"]
    elif problem == "label map":
        (tmp_path / "map.csv").write_text("from,to\na,b\na,c\n")
        argv += ["--label-map", str(tmp_path / "map.csv")]
    else:
        truth = pd.read_csv(data / "GroundTruth.csv").astype({"MELANOMA": object})
        truth.loc[0, "MELANOMA"] = "x"
        truth.to_csv(data / "GroundTruth.csv", index=False)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert message in err and len(err.strip().splitlines()) == 1 and not out
    assert not (tmp_path / "split.csv").exists()


def test_every_problem_is_listed_not_only_the_first(tmp_path):
    data = make_synthetic_set(tmp_path / "d", "csv", THREE, n_per_class=3)
    for name in ("IMG_00000001.jpg", "IMG_00010002.jpg"):
        (data / "images" / name).unlink()
    with pytest.raises(DataValidationError) as error:
        load_dataset(data)
    assert len(error.value.problems) == 2


def test_the_split_of_a_folder_tree_is_by_its_near_duplicates_and_says_so(tmp_path, capsys, caplog):
    data = make_synthetic_set(tmp_path / "tree", "folder", THREE, n_per_class=8)
    assert main(["split", "--data-dir", str(data), "--output", str(tmp_path / "split.csv")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == list(THREE)
    assert "split groups: near-duplicates joined 0 groups of one image" in caplog.text
    import mlflow

    run = mlflow.get_run(summary["run_id"])
    assert run.data.params["grouped_by"] == "image" and run.data.params["data_format"] == "folder"
    assert run.data.tags["skinml.split_grouped_by"] == "near-duplicate groups (the data has no group column)"


def test_several_problems_are_one_line(tmp_path):
    data = make_synthetic_set(tmp_path / "d", "csv", THREE, n_per_class=3)
    table = pd.read_csv(data / "labels.csv")
    table.loc[[1, 4], "label"] = ""
    table.to_csv(data / "labels.csv", index=False)
    with pytest.raises(DataValidationError) as error:
        load_dataset(data)
    assert "\n" not in str(error.value) and "2 problems: labels.csv row 3: empty label; labels.csv row 6" in str(
        error.value
    )


def test_a_csv_that_matches_no_layout_is_not_taken_for_a_folder_tree(tmp_path):
    data = make_synthetic_set(tmp_path / "tree", "folder", THREE, n_per_class=3)
    pd.DataFrame({"imageid": ["x"], "dx": ["mel"]}).to_csv(data / "metadata.csv", index=False)  # a header typo
    with pytest.raises(
        DataValidationError,
        match=r"no layout matches what the folder holds \(metadata.csv \(columns "
        r"imageid, dx\), keratosis/, .*ham10000 \(a CSV with image_id, dx, "
        r"lesion_id: no image_id, lesion_id\)",
    ):
        load_dataset(data)
    assert load_dataset(data, data_format="folder").attrs["data_format"] == "folder"
    pd.DataFrame({"image": ["x"], "diagnosis": ["mel"]}).to_csv(data / "metadata.csv", index=False)
    with pytest.raises(DataValidationError, match="no layout matches"):  # text labels are not one-hot columns
        load_dataset(data)


def test_the_label_table_is_chosen_among_the_csvs_of_a_layout(tmp_path):
    # ISIC 2020 as Kaggle ships it: train.csv with labels, test.csv and sample_submission.csv without
    data = make_synthetic_set(tmp_path / "isic2020", "isic2020", ("benign", "malignant"), n_per_class=4)
    train = pd.read_csv(data / "train.csv").assign(benign_malignant=lambda t: t["diagnosis"])
    train.assign(target=(train["diagnosis"] == "malignant").astype(int)).to_csv(data / "train.csv", index=False)
    pd.DataFrame({"image_name": ["ISIC_1"], "patient_id": ["P1"]}).to_csv(data / "test.csv", index=False)
    pd.DataFrame({"image_name": ["ISIC_1"], "target": [0]}).to_csv(data / "sample_submission.csv", index=False)
    assert load_dataset(data)["dx"].value_counts().to_dict() == {"benign": 4, "malignant": 4}
    # ISIC 2019: the metadata CSV that covers the ground truth's images, not the test set's
    data = isic2019(tmp_path / "isic2019")
    pd.DataFrame({"image": ["ISIC_T1"], "lesion_id": ["L1"]}).to_csv(data / "ISIC_2019_Test_Metadata.csv", index=False)
    frame = load_dataset(data)
    assert frame.attrs["grouped_by"] == "lesion_id" and frame["lesion_id"].str.startswith("G_").all()


@pytest.mark.parametrize(
    "labels, message",
    [
        (("benign", "label"), "class name(s) ['label'] are column names of the model's answer"),
        (("naevus",), "only one class ('naevus', 6 images): a classifier needs at least two"),
    ],
)
def test_labels_no_model_can_have_are_refused_in_one_line(tmp_path, capsys, labels, message):
    data = make_synthetic_set(tmp_path / "d", "csv", labels, n_per_class=6)
    assert main(["split", "--data-dir", str(data), "--output", str(tmp_path / "split.csv")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_label_map_entry_that_names_no_label_is_noted(tmp_path, caplog):
    data = make_synthetic_set(tmp_path / "d", "csv", THREE, n_per_class=3)
    frame = load_dataset(data, label_map={"Melanoma": "malignant", "melanomma": "malignant"})
    assert "malignant" in set(frame["dx"])
    assert "label map: ['melanomma'] name(s) no label of d" in caplog.text


def test_evaluate_refuses_data_options_without_a_folder(capsys):
    assert main(["evaluate", "--model-uri", "runs:/x/model", "--data-format", "csv"]) == 2
    assert "apply to an external folder: give it with --data-dir" in capsys.readouterr().err
