"""The audit (skinml.audit): planted duplicates found and nothing else, the groups they make, label flips found,
leaks across sets, the page."""

import numpy as np
import pandas as pd
import pytest

from skinml.audit.findings import audit_data
from skinml.audit.groups import merged_groups
from skinml.audit.keypoints import all_keypoints
from skinml.audit.label_suspects import label_suspects, out_of_fold_probabilities
from skinml.audit.leaks import leak_metrics, leaked_images
from skinml.audit.report import audit_page
from skinml.core.names import AUDIT_METRICS
from skinml.data.dataset import load_dataset
from skinml.data.split import make_split
from skinml.stages.grouping import regrouped

from ..planted import COPIES, planted_set, textured


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted") / "ham"
    pairs = planted_set(folder)
    frame = load_dataset(folder)
    return frame, all_keypoints(frame["path"].tolist()), pairs


def test_planted_copies_are_found_and_nothing_else(planted):
    frame, keypoints, pairs = planted
    audit = audit_data(frame, keypoints)
    found = {tuple(sorted(p)) for p in audit.duplicates[["image_a", "image_b"]].to_numpy().tolist()}
    assert found == {tuple(sorted(p)) for p in pairs[["image_id", "copy_id"]].to_numpy().tolist()}
    kinds = {
        a if a.startswith("copy") else b: k for a, b, k in audit.duplicates[["image_a", "image_b", "kind"]].to_numpy()
    }
    assert kinds["copy-exact"] == "exact" and {kinds[f"copy-{how}"] for how in COPIES[:-1]} == {"near"}
    # each copy is its own lesion in the metadata: every pair is one the data's groups missed
    assert len(audit.missed) == len(COPIES)
    counts = audit.counts()
    assert set(counts) <= set(AUDIT_METRICS)
    assert counts["exact_duplicate_pairs"] == 1 and counts["near_duplicate_pairs"] == len(COPIES) - 1
    assert counts["groups"] == len(frame) - len(COPIES) and counts["largest_group"] == 2


def test_groups_join_the_data_s_groups_through_duplicates():
    frame = pd.DataFrame({"image_id": list("abcde"), "lesion_id": ["L1", "L1", "L2", "L3", "L4"]})
    pairs = pd.DataFrame({"a": [1, 3], "b": [2, 4]})
    assert merged_groups(frame, pairs).tolist() == ["L1", "L1", "L1", "L3", "L3"]
    alone = merged_groups(frame, pairs, grouped=False).tolist()
    assert alone == ["a", "duplicates-of-b", "duplicates-of-b", "duplicates-of-d", "duplicates-of-d"]


def test_a_folder_without_groups_is_split_by_duplicate_groups(tmp_path):
    pairs = planted_set(tmp_path / "tree", layout="folder", n=60)
    frame = load_dataset(tmp_path / "tree")
    assert frame.attrs["grouped_by"] is None
    grouped = regrouped(frame)
    assert grouped.attrs["duplicate_groups"] == len(COPIES)
    for seed in range(5):  # by image, a copy lands beside its source by chance only
        side = make_split(grouped, seed=seed).set_index("image_id")["split"]
        assert (side[pairs["image_id"]].to_numpy() == side[pairs["copy_id"]].to_numpy()).all()


def test_merge_joins_groups_only_when_asked(planted):
    frame = planted[0]
    assert regrouped(frame) is frame
    merged = regrouped(frame, merge=True)
    assert merged["lesion_id"].nunique() == frame["lesion_id"].nunique() - len(COPIES)


def test_planted_label_flips_are_the_suspects():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 100)
    features = rng.normal(0, 1, (300, 32)) + np.eye(3, 32)[labels] * 10
    flipped = np.array([3, 50, 120, 180, 230, 290])
    given = labels.copy()
    given[flipped] = (labels[flipped] + 1) % 3
    classes = ["bkl", "mel", "nv"]
    frame = pd.DataFrame({"image_id": [f"i{k}" for k in range(300)], "dx": np.asarray(classes)[given]})
    probabilities = out_of_fold_probabilities(features, given, np.arange(300))
    suspects = label_suspects(frame, probabilities, classes)
    found, planted = set(suspects["image_id"]), {f"i{k}" for k in flipped}
    assert found <= planted and len(found) >= len(planted) - 1  # confident learning's per-class thresholds
    first = suspects.iloc[0]
    assert first["suggested"] == classes[labels[int(first["image_id"][1:])]] and first["label_quality"] < 0.1


def test_leaks_name_the_external_images_a_model_trained_on(planted):
    frame, _, pairs = planted
    unseen = frame["image_id"] >= "img020"
    training = frame[frame["image_id"].str.startswith("img") & ~unseen]
    external = frame[frame["image_id"].str.startswith("copy") | unseen]
    leaks = leaked_images(external, training)
    assert sorted(leaks["image_id"]) == sorted(pairs["copy_id"])
    assert dict(zip(leaks["image_id"], leaks["training_image"])) == dict(zip(pairs["copy_id"], pairs["image_id"]))
    classes = ("bkl", "mel", "nv")
    predictions = external[["image_id", "dx"]].assign(**{c: (external["dx"] == c).astype(float) for c in classes})
    predictions.loc[predictions["image_id"] == "copy-shift", list(classes)] = [1.0, 0.0, 0.0]  # a leak, wrong
    metrics = leak_metrics(predictions, classes, leaks, "test")
    assert metrics["test_leaked_images"] == len(COPIES) and metrics["test_without_leaks_accuracy"] == 1.0


def test_the_page_shows_each_pair_side_by_side(planted):
    frame, keypoints, _ = planted
    rng = np.random.default_rng(1)
    features = rng.normal(size=(len(frame), 8))
    audit = audit_data(frame, keypoints, features=features)
    page = audit_page(audit, frame, title="Audit of ham")
    assert page.count("data:image/jpeg;base64,") >= 2 * len(COPIES)
    assert "copy-rotate" in page and "Missed duplicates" in page and "Label suspects" in page


def test_identical_images_are_exact_pairs_only(tmp_path):
    from PIL import Image

    from skinml.audit.duplicates import duplicate_pairs

    image = textured(np.random.default_rng(3))
    paths = []
    for name in ("a", "b", "c"):
        image.save(tmp_path / f"{name}.png")
        paths.append(str(tmp_path / f"{name}.png"))
    with Image.open(paths[0]) as first:  # and a fourth, near: a quarter turn
        first.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "d.png")
    pairs = duplicate_pairs(all_keypoints([*paths, str(tmp_path / "d.png")]))
    kinds = {(a, b): kind for a, b, kind in pairs[["a", "b", "kind"]].to_numpy().tolist()}
    assert {pair: kind for pair, kind in kinds.items() if kind == "exact"} == {(0, 1): "exact", (0, 2): "exact"}
    assert {b for (a, b), kind in kinds.items() if kind == "near"} == {3}


def test_the_groups_joined_count_joins_not_lesions_of_several_images():
    from skinml.audit.groups import joined_groups

    frame = pd.DataFrame({"image_id": list("abcd"), "lesion_id": ["L1", "L1", "L2", "L3"]})
    joined = merged_groups(frame, pd.DataFrame({"a": [2], "b": [3]}))
    assert joined.tolist() == ["L1", "L1", "L2", "L2"] and joined_groups(frame["lesion_id"], joined) == 1


def test_no_suspects_without_two_groups_a_class(planted):
    frame, keypoints, _ = planted
    few = frame.iloc[:4].assign(dx=["mel", "mel", "nv", "nv"], lesion_id=["L1", "L1", "L2", "L2"])
    audit = audit_data(few, keypoints[:4], features=np.random.default_rng(0).normal(size=(4, 8)))
    assert audit.suspects is None and "label_suspects" not in audit.counts()
