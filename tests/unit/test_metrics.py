import numpy as np
import pandas as pd
import pytest

from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.evaluation.metrics import (
    classification_metrics,
    expected_calibration_error,
    interval_metrics,
    lesion_bootstrap_intervals,
    lesion_resample_counts,
    paired_balanced_accuracy_difference,
    per_class_auc,
    rank_auc,
    slice_metrics,
    weighted_recalls,
)


def test_metrics_on_a_known_case():
    y = np.array([0, 0, 1, 1, 3, 6])
    probs = np.full((6, 7), 0.01)
    for i, k in enumerate([0, 1, 1, 1, 3, 6]):  # one akiec called bcc
        probs[i, k] = 0.94
    m = classification_metrics(y, probs, CLASSES)
    assert m["accuracy"] == 5 / 6
    assert m["balanced_accuracy"] == (0.5 + 1 + 1 + 1) / 4
    assert m["per_class"]["akiec"]["recall"] == 0.5 and m["per_class"]["bcc"]["precision"] == 2 / 3
    assert m["per_class"]["df"]["support"] == 1 and np.isnan(m["per_class"]["mel"]["auc"])


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    y = np.array([0] * 8 + [1] * 2)
    calibrated = np.zeros((10, 7))
    calibrated[:, 0], calibrated[:, 1] = 0.8, 0.2  # 80 % confident, 80 % right
    assert expected_calibration_error(y, calibrated)[0] < 1e-9
    overconfident = np.zeros((10, 7))
    overconfident[:, 0] = 1.0
    ece, table = expected_calibration_error(y, overconfident)
    assert abs(ece - 0.2) < 1e-9 and sum(table["count"]) == 10


def test_slices_cover_each_metadata_value_and_flag_small_ones():
    n = 40
    frame = pd.DataFrame(
        {
            "sex": ["male"] * 35 + ["female"] * 5,
            "age": [50] * 20 + [80] * 19 + [None],
            "localization": ["back"] * n,
            "dx_type": ["histo"] * n,
            "dataset": ["x"] * n,
        }
    )
    y = np.arange(n) % 7
    probs = np.eye(7)[y]
    slices = slice_metrics(frame, y, probs).set_index(["column", "value"])
    assert slices.loc[("sex", "female"), "n"] == 5 and slices.loc[("sex", "female"), "small"]
    assert not slices.loc[("sex", "male"), "small"]
    assert slices.loc[("age_band", "45-59"), "n"] == 20 and slices.loc[("age_band", "75+"), "n"] == 19
    assert slices.loc[("age_band", "unknown"), "n"] == 1
    assert (slices["accuracy"] == 1).all()


def test_bootstrap_intervals_resample_whole_lesions():
    rng = np.random.default_rng(3)
    y_true = np.tile(np.arange(len(CLASSES)), 20)
    probs = rng.dirichlet(np.ones(len(CLASSES)), len(y_true))
    probs[np.arange(len(y_true)), y_true] += rng.uniform(0, 1, len(y_true))  # informative, not perfect
    probs /= probs.sum(axis=1, keepdims=True)
    point = classification_metrics(y_true, probs, CLASSES)
    by_class = list(per_class_auc(y_true, probs, CLASSES).values())
    np.testing.assert_allclose(rank_auc(y_true, probs), by_class, atol=1e-12)
    intervals = lesion_bootstrap_intervals(
        y_true, probs, lesions=np.arange(len(y_true)), classes=CLASSES, n_resamples=200
    )
    for name in ("balanced_accuracy", "macro_auc"):
        low, high = intervals[name]
        assert low < point[name] < high and high - low > 0.02
    for name in CLASSES:  # each class's recall, on its 20 images
        low, high = intervals[f"recall/{name}"]
        assert low <= point["per_class"][name]["recall"] <= high and high - low > 0.1
    assert interval_metrics(intervals, "test")["test_recall_ci95_low/mel"] == intervals["recall/mel"][0]
    # ten images of each lesion carry no more evidence than one: the same intervals, not ten-fold narrower ones
    tenfold = lesion_bootstrap_intervals(
        np.repeat(y_true, 10),
        np.repeat(probs, 10, axis=0),
        lesions=np.repeat(np.arange(len(y_true)), 10),
        classes=CLASSES,
        n_resamples=200,
    )
    for name in intervals:
        np.testing.assert_allclose(tenfold[name], intervals[name], atol=1e-9)
    perfect = np.eye(len(CLASSES))[y_true]
    assert lesion_bootstrap_intervals(y_true, perfect, np.arange(len(y_true)), n_resamples=50) == {
        "balanced_accuracy": [1.0, 1.0],
        "macro_auc": [1.0, 1.0],
    }


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_a_weighted_resample_scores_as_scikit_learn_scores_the_resample_built():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(5)
    y_true, y_pred = rng.integers(0, 4, 90), rng.integers(0, 5, 90)  # 4: a class the truth never has
    lesions = rng.integers(0, 30, 90).astype(str)
    weights = lesion_resample_counts(lesions, 50, seed=1)
    assert weights.shape == (50, 90)
    for image_a, image_b in zip(*np.nonzero(lesions[:, None] == lesions[None, :])):
        assert (weights[:, image_a] == weights[:, image_b]).all()  # a lesion's images are drawn together
    recalls = weighted_recalls(weights, y_true, y_pred, 5)
    for w, row in zip(weights, recalls):
        rows = np.repeat(np.arange(90), w)
        assert np.nanmean(row) == pytest.approx(balanced_accuracy_score(y_true[rows], y_pred[rows]), abs=1e-12)


def test_paired_difference_matches_scikit_learn_and_is_zero_for_one_model():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(3)
    truth = rng.choice(list("abcd"), 300)
    first = np.where(rng.random(300) < 0.5, truth, rng.choice(list("abcd"), 300))
    second = np.where(rng.random(300) < 0.8, truth, rng.choice(list("abcd"), 300))
    lesions = rng.integers(0, 120, 300)
    first_score, second_score, (low, high) = paired_balanced_accuracy_difference(truth, first, second, lesions)
    assert first_score == pytest.approx(balanced_accuracy_score(truth, first))
    assert second_score == pytest.approx(balanced_accuracy_score(truth, second))
    assert 0 < low < second_score - first_score < high  # a clear gain: the whole interval above 0
    assert paired_balanced_accuracy_difference(truth, first, first, lesions)[2] == [0.0, 0.0]  # paired: no noise
    # a lesion's images move together: one lesion holding every image leaves no spread at all
    assert paired_balanced_accuracy_difference(truth, first, second, np.zeros(300))[2] == pytest.approx(
        [second_score - first_score] * 2
    )
