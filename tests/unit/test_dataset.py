import shutil

import pandas as pd
import pytest

from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.data.dataset import DataValidationError, load_dataset
from skinml.data.synthetic import make_synthetic_ham, make_synthetic_isic


def test_reads_official_layout(synthetic_dir):
    frame = load_dataset(synthetic_dir)
    assert len(frame) == 7 * 12
    assert set(frame["dx"]) == set(CLASSES)
    assert all(p.endswith(".jpg") for p in frame["path"])
    assert {"lesion_id", "image_id", "dx", "path", "age", "sex", "localization"} <= set(frame.columns)


def test_reads_kaggle_layout_with_two_image_folders(tmp_path):
    data = make_synthetic_ham(tmp_path / "kaggle", n_per_class=2)
    images = sorted((data / "images").iterdir())
    for folder, part in (("HAM10000_images_part_1", images[::2]), ("HAM10000_images_part_2", images[1::2])):
        (data / folder).mkdir()
        for image in part:
            shutil.move(image, data / folder / image.name)
    (data / "images").rmdir()
    frame = load_dataset(data)
    assert len(frame) == 14
    assert {p.split("/")[-2] for p in frame["path"]} == {"HAM10000_images_part_1", "HAM10000_images_part_2"}


def test_reads_isic2018_onehot_form(tmp_path):
    frame = load_dataset(make_synthetic_isic(tmp_path / "isic", n_per_class=2))
    assert frame["dx"].value_counts().to_dict() == {c: 2 for c in CLASSES}
    assert (frame["lesion_id"] == frame["image_id"]).all()  # no metadata CSV beside it: each image its own group
    assert frame.attrs["data_format"] == "isic" and frame.attrs["grouped_by"] is None


@pytest.fixture
def small_copy(tmp_path):
    return make_synthetic_ham(tmp_path / "data", n_per_class=2)


def test_missing_column_is_named(small_copy):
    csv = small_copy / "HAM10000_metadata.csv"
    pd.read_csv(csv).drop(columns=["dx"]).to_csv(csv, index=False)
    with pytest.raises(DataValidationError, match=r"missing required column\(s\) \['dx'\]"):
        load_dataset(small_copy)


def test_a_metadata_csv_that_is_not_utf8_names_its_line(small_copy):
    csv = small_copy / "HAM10000_metadata.csv"
    lines = csv.read_bytes().splitlines()
    lines[5] = lines[5].replace(b"trunk", "R\xfccken".encode("latin-1"))  # a Latin-1 export from a spreadsheet
    csv.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataValidationError, match="HAM10000_metadata.csv: line 6 is not UTF-8 text"):
        load_dataset(small_copy)


def test_every_missing_image_and_unknown_class_is_reported(small_copy):
    csv = small_copy / "HAM10000_metadata.csv"
    frame = pd.read_csv(csv)
    frame.loc[3, "dx"] = "melanoma"
    frame.to_csv(csv, index=False)
    with pytest.raises(DataValidationError) as error:
        load_dataset(small_copy)
    assert "row 5" in str(error.value) and "unknown class dx='melanoma'" in str(error.value)
    frame.loc[3, "dx"] = "mel"
    frame.to_csv(csv, index=False)
    first, second = frame["image_id"][0], frame["image_id"][5]
    (small_copy / "images" / f"{first}.jpg").unlink()
    (small_copy / "images" / f"{second}.jpg").unlink()
    with pytest.raises(DataValidationError) as error:
        load_dataset(small_copy)
    assert len(error.value.problems) == 2
    assert f"{first}.jpg not found" in str(error.value) and f"{second}.jpg not found" in str(error.value)


def test_corrupt_jpeg_is_named(small_copy):
    victim = sorted((small_copy / "images").iterdir())[4]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated
    with pytest.raises(DataValidationError, match=victim.name):
        load_dataset(small_copy)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match="no layout matches what the folder holds \\(nothing\\)"):
        load_dataset(tmp_path / "empty")


def test_missing_folder(tmp_path):
    with pytest.raises(DataValidationError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
