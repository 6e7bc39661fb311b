"""The figures of skinml.evaluation.plots and skinml.evaluation.decision_plots: their axes, titles and what they draw,
from small synthetic probabilities and labels."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from skinml.evaluation import decision_plots, plots
from skinml.evaluation.decisions import choose, positives, score
from skinml.evaluation.metrics import expected_calibration_error

CLASSES = ("akiec", "mel", "nv")


@pytest.fixture
def predictions():
    """60 images of three classes, with probabilities that mostly rank the true class first."""
    rng = np.random.default_rng(0)
    y_true = np.repeat([0, 1, 2], 20)
    logits = rng.normal(0, 1, (60, 3)) + 2.0 * np.eye(3)[y_true]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, probs


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def test_training_curves_plot_each_figure_per_epoch_for_train_and_validation():
    history = {
        "train_loss": [1.0, 0.8, 0.6],
        "val_loss": [1.1, 0.9, 0.85],
        "train_accuracy": [0.3, 0.5, 0.6],
        "val_accuracy": [0.3, 0.4, 0.5],
        "train_balanced_accuracy": [0.2, 0.3, 0.4],
    }
    fig = plots.training_curves(history)
    assert isinstance(fig, Figure) and plt.get_fignums() == []  # no pyplot figure left open
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["loss per epoch", "accuracy per epoch", "balanced accuracy per epoch"]
    assert [ax.get_ylabel() for ax in axes] == ["loss", "accuracy", "balanced accuracy"]
    assert all(ax.get_xlabel() == "epoch" for ax in axes)
    loss = lines_by_label(axes[0])
    assert set(loss) == {"train", "val"}
    assert list(loss["train"].get_xdata()) == [1, 2, 3] and list(loss["val"].get_ydata()) == [1.1, 0.9, 0.85]
    assert set(lines_by_label(axes[2])) == {"train"}  # no validation figures: no line
    assert all(tick == int(tick) for tick in axes[0].xaxis.get_major_locator()())  # whole-number epochs


def test_confusion_matrices_show_counts_and_row_normalised_recall():
    y_true, y_pred = np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 1, 0])
    fig = plots.confusion_matrices(y_true, y_pred, CLASSES)
    counts, recall = fig.get_axes()[:2]  # then the colour bars
    assert counts.get_title() == "Confusion matrix, counts"
    assert recall.get_title() == "Confusion matrix, row-normalised (recall)"
    assert counts.get_xlabel() == "predicted" and counts.get_ylabel() == "true"
    assert [t.get_text() for t in counts.get_xticklabels()] == list(CLASSES)
    assert [t.get_text() for t in counts.texts] == ["2", "1", "0", "0", "2", "0", "1", "0", "0"]
    assert [t.get_text() for t in recall.texts] == [
        "0.67",
        "0.33",
        "0.00",
        "0.00",
        "1.00",
        "0.00",
        "1.00",
        "0.00",
        "0.00",
    ]


def test_a_class_absent_from_the_labels_gets_a_zero_row_not_nan():
    fig = plots.confusion_matrices(np.array([0, 1]), np.array([0, 2]), CLASSES)
    recall = fig.get_axes()[1]
    assert [t.get_text() for t in recall.texts][6:] == ["0.00", "0.00", "0.00"]


def test_a_large_label_set_gets_a_larger_figure():
    many = tuple(f"c{k}" for k in range(20))
    assert (
        plots.confusion_matrices(np.arange(20), np.arange(20), many).get_figwidth()
        > plots.confusion_matrices(np.array([0, 1]), np.array([0, 1]), CLASSES).get_figwidth()
    )


def test_roc_curves_draw_one_curve_per_class_with_its_auc_and_the_diagonal(predictions):
    y_true, probs = predictions
    aucs = {name: roc_auc_score(y_true == k, probs[:, k]) for k, name in enumerate(CLASSES)}
    ax = plots.roc_curves(y_true, probs, aucs).get_axes()[0]
    assert ax.get_title() == "ROC per class (one-vs-rest)"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:3] == [f"{name} (AUC {aucs[name]:.3f})" for name in CLASSES]
    diagonal = ax.get_lines()[3]
    assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == labels[:3]


def test_roc_curves_skip_a_class_with_no_positive_image(predictions):
    y_true, probs = predictions
    y_true = np.where(y_true == 2, 0, y_true)  # no nv left
    ax = plots.roc_curves(y_true, probs, {"akiec": 0.9, "mel": 0.8, "nv": float("nan")}).get_axes()[0]
    assert [line.get_label() for line in ax.get_lines()][:2] == ["akiec (AUC 0.900)", "mel (AUC 0.800)"]
    assert len(ax.get_lines()) == 3  # two curves and the diagonal


def test_the_reliability_diagram_shows_accuracy_per_bin_and_the_ece(predictions):
    y_true, probs = predictions
    ece, table = expected_calibration_error(y_true, probs)
    ax = plots.reliability_diagram(table, ece).get_axes()[0]
    assert ax.get_title() == f"Reliability diagram (ECE {ece:.3f})"
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, np.nan_to_num(table["accuracy"]))  # an empty bin: a bar of 0
    assert len(heights) == 15 and ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1)
    assert "perfect calibration" in lines_by_label(ax)


def test_the_slice_chart_hatches_small_slices():
    slices = pd.DataFrame(
        {
            "column": ["sex", "sex", "age_band"],
            "value": ["male", "female", "30-45"],
            "n": [40, 12, 35],
            "balanced_accuracy": [0.6, 0.4, 0.5],
            "small": [False, True, False],
        }
    )
    ax = plots.slice_chart(slices).get_axes()[0]
    assert ax.get_title() == "Balanced accuracy per slice (hatched: fewer than 30 images)"
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "sex=male (n=40)",
        "sex=female (n=12)",
        "age_band=30-45 (n=35)",
    ]
    bars = ax.patches
    assert [bar.get_width() for bar in bars] == [0.6, 0.4, 0.5]
    assert [bar.get_hatch() for bar in bars] == [None, "//", None]
    assert ax.yaxis_inverted()  # the first slice on top


def test_the_grad_cam_grid_places_each_image_with_its_title():
    rng = np.random.default_rng(0)
    images, cams = rng.integers(0, 256, (5, 40, 40, 3)), rng.random((5, 40, 40))
    titles = [f"mel -> nv ({k / 10:.2f})" for k in range(5)]
    fig = plots.grad_cam_grid(images, cams, titles, columns=3)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == titles
    assert all(len(ax.get_images()) == 2 for ax in axes)  # the image and its heat-map over it
    assert fig.get_suptitle().startswith("Grad-CAM (last conv layer) for the true class")
    rows = sorted({round(ax.get_position().y0, 4) for ax in axes}, reverse=True)
    assert len(rows) == 2  # 5 images, 3 per row
    assert [round(ax.get_position().y0, 4) for ax in axes] == [rows[0]] * 3 + [rows[1]] * 2


@pytest.fixture
def scored(predictions):
    y_true, probs = predictions
    decisions = choose(
        probs, y_true, CLASSES, positive_classes=(), target_sensitivities=(0.8, 0.95), target_balanced_accuracy=0.5
    )
    return decisions, score(probs, y_true, CLASSES, decisions, np.arange(len(y_true)), n_resamples=50)


def test_referral_curves_show_the_roc_and_the_threshold_sweep_with_each_operating_point(predictions, scored):
    y_true, probs = predictions
    decisions, result = scored
    assert decisions["positive_classes"] == ["akiec", "mel"]
    scores = probs[:, :2].sum(axis=1)
    is_positive = positives(y_true, CLASSES, ["akiec", "mel"])
    roc, sweep = decision_plots.referral_curves(scores, is_positive, result).get_axes()
    assert roc.get_title() == "Refer: akiec+mel against the rest"
    assert sweep.get_title() == "Sensitivity and specificity"
    assert sweep.get_xlabel() == "threshold on P(akiec+mel)"
    roc_lines = lines_by_label(roc)
    assert f"P(akiec+mel) AUC={roc_auc_score(is_positive, scores):.3f}" in roc_lines
    for point in result["operating_points"]:
        marker = roc_lines[f"target {point['target_sensitivity']:.2f}: t={point['threshold']:.3f}"]
        assert list(marker.get_xdata()) == [1 - point["specificity"]]
        assert list(marker.get_ydata()) == [point["sensitivity"]]
    sweep_lines = lines_by_label(sweep)
    sensitivity = sweep_lines["sensitivity"].get_ydata()
    assert sensitivity[0] == 1.0 and sensitivity[-1] <= sensitivity[0]  # falls as the threshold rises
    assert sweep_lines["specificity"].get_ydata()[0] == 0.0
    verticals = [line.get_xdata()[0] for line in sweep.get_lines() if line.get_linestyle() == ":"]
    assert verticals == [point["threshold"] for point in result["operating_points"]]


def test_the_coverage_curve_marks_the_deferral(predictions, scored):
    y_true, probs = predictions
    deferral = scored[1]["deferral"]
    ax = decision_plots.coverage_curve(probs, y_true, deferral).get_axes()[0]
    assert ax.get_title() == "Deferral: coverage against accuracy"
    lines = ax.get_lines()
    curve = lines[0]
    assert len(curve.get_xdata()) == 40 and curve.get_xdata()[-1] == 1.0
    assert curve.get_ydata()[-1] == pytest.approx(
        np.mean([(probs[y_true == k].argmax(axis=1) == k).mean() for k in range(3)])
    )  # everything kept
    target = lines_by_label(ax)["target balanced accuracy"]
    assert list(target.get_ydata()) == [0.5, 0.5]
    point = lines_by_label(ax)[f"defer below confidence {deferral['confidence']:.3f}"]
    assert list(point.get_xdata()) == [deferral["coverage"]]
    assert list(point.get_ydata()) == [deferral["balanced_accuracy"]]
