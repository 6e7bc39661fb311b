import pandas as pd
import pytest

from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.data.dataset import load_dataset
from skinml.data.split import (
    lesions_crossing,
    make_split,
    manifest_digest,
    read_manifest,
    split_keeping_test,
    split_summary,
)
from skinml.data.synthetic import make_synthetic_ham


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return load_dataset(
        make_synthetic_ham(tmp_path_factory.mktemp("s") / "d", n_per_class=30, images_per_lesion=3), check_images=False
    )


def test_grouped_split_keeps_lesions_together_and_stratifies(frame):
    manifest = make_split(frame, "grouped", seed=1)
    assert lesions_crossing(manifest) == 0
    assert list(manifest.columns) == ["image_id", "lesion_id", "dx", "split"]
    for part in ("train", "val", "test"):
        assert set(manifest[manifest["split"] == part]["dx"]) == set(CLASSES)
    counts = manifest["split"].value_counts(normalize=True)
    assert 0.6 < counts["train"] < 0.8 and 0.1 < counts["test"] < 0.2


def test_split_is_deterministic_by_seed(frame):
    assert manifest_digest(make_split(frame, seed=3)) == manifest_digest(make_split(frame, seed=3))
    assert manifest_digest(make_split(frame, seed=3)) != manifest_digest(make_split(frame, seed=4))
    # the row order of the input does not matter
    shuffled = frame.sample(frac=1, random_state=0)
    assert manifest_digest(make_split(shuffled, seed=3)) == manifest_digest(make_split(frame, seed=3))


def test_random_split_leaks_lesions_and_says_so(frame):
    manifest = make_split(frame, "random", seed=1)
    summary = split_summary(manifest)
    assert summary["lesions_crossing_splits"] > 0
    assert summary["n_train"] + summary["n_val"] + summary["n_test"] == len(frame)


def test_manifest_round_trip_and_validation(frame, tmp_path):
    manifest = make_split(frame)
    manifest.to_csv(tmp_path / "m.csv", index=False)
    assert manifest_digest(read_manifest(tmp_path / "m.csv")) == manifest_digest(manifest)
    manifest.assign(split="holdout").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="unknown split name"):
        read_manifest(tmp_path / "bad.csv")
    pd.DataFrame({"image_id": ["a"]}).to_csv(tmp_path / "bad2.csv", index=False)
    with pytest.raises(ValueError, match="missing column"):
        read_manifest(tmp_path / "bad2.csv")


def test_bad_strategy_and_fractions(frame):
    with pytest.raises(ValueError, match="unknown split strategy"):
        make_split(frame, "by-vibes")
    with pytest.raises(ValueError, match="sum to less than 1"):
        make_split(frame, val_fraction=0.5, test_fraction=0.5)


def test_retraining_keeps_every_lesion_on_its_side_and_splits_only_new_ones(frame):
    fixed = make_split(frame, "grouped", val_fraction=0.15, test_fraction=0.15, seed=42)
    assert split_keeping_test(frame, fixed).equals(fixed.sort_values("image_id").reset_index(drop=True))  # unchanged
    old = frame.iloc[::2]  # the champion saw half of the images; the folder has grown since
    fixed = make_split(old, "grouped", val_fraction=0.15, test_fraction=0.15, seed=42)
    grown = split_keeping_test(frame, fixed).set_index("image_id")["split"]
    before = fixed.set_index("image_id")["split"]
    assert (grown[before.index] == before).all()  # every image it had keeps its side
    by_lesion = fixed.drop_duplicates("lesion_id").set_index("lesion_id")["split"]
    lesions = frame.set_index("image_id")["lesion_id"]
    for image in set(frame["image_id"]) - set(old["image_id"]):  # a new image of a known lesion joins it
        if lesions[image] in by_lesion.index:
            assert grown[image] == by_lesion[lesions[image]]
    assert lesions_crossing(split_keeping_test(frame, fixed)) == 0


def test_a_kept_test_split_survives_groups_renamed_by_duplicates():
    from skinml.data.split import split_keeping_test

    images = [f"i{k:02d}" for k in range(40)]
    fixed = pd.DataFrame(
        {"image_id": images, "lesion_id": images, "dx": ["a", "b"] * 20, "split": ["test"] * 8 + ["train"] * 32}
    )
    # retraining: i00 (test) and i10 (train) found to be duplicates, a new image joins i01's group, all renamed
    groups = {"i00": "duplicates-of-i00", "i10": "duplicates-of-i00", "i01": "duplicates-of-i01"}
    frame = pd.DataFrame({"image_id": [*images, "new"], "dx": ["a", "b"] * 20 + ["b"]})
    frame["lesion_id"] = frame["image_id"].map(groups).fillna(frame["image_id"])
    frame.loc[frame["image_id"] == "new", "lesion_id"] = "duplicates-of-i01"
    side = split_keeping_test(frame, fixed).set_index("image_id")["split"]
    assert set(side[side == "test"].index) == set(images[:8]) | {"i10", "new"}  # every old test image stays
    assert (side[images[11:]] != "test").all()
