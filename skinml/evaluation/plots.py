"""Evaluation and training plots: matplotlib/seaborn figures, made without pyplot so that none stays open once
logged (pyplot keeps each figure it creates until it is closed: a leak wherever train or evaluate run many times in
one process, as in a benchmark or a notebook)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import confusion_matrix, roc_curve

from skinml.core.names import EPOCH_FIGURES, TRAIN, VAL, metric_name


def training_curves(history: dict[str, list[float]]) -> Figure:
    """Loss, accuracy and balanced accuracy per epoch, train vs validation (whole-number epochs)."""
    fig = Figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    for ax, metric in zip(axes, EPOCH_FIGURES):
        for split in (TRAIN, VAL):
            values = history.get(metric_name(split, metric))
            if values:
                ax.plot(range(1, len(values) + 1), values, marker="o", label=split)
        ax.set(title=f"{metric.replace('_', ' ')} per epoch", xlabel="epoch", ylabel=metric.replace("_", " "))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> Figure:
    """Confusion matrix as counts and row-normalised (recall on the diagonal)."""
    classes = list(classes)
    counts = confusion_matrix(y_true, y_pred, labels=range(len(classes)))
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = counts / counts.sum(axis=1, keepdims=True)
    side = max(5.5, 0.6 * len(classes))  # room for the names of a large label set
    fig = Figure(figsize=(2.5 * side, side))
    axes = fig.subplots(1, 2)
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", ax=axes[0], xticklabels=classes, yticklabels=classes)
    sns.heatmap(
        np.nan_to_num(normalised),
        annot=True,
        fmt=".2f",
        cmap="Blues",
        vmin=0,
        vmax=1,
        ax=axes[1],
        xticklabels=classes,
        yticklabels=classes,
    )
    for ax, title in zip(axes, ("counts", "row-normalised (recall)")):
        ax.set(title=f"Confusion matrix, {title}", xlabel="predicted", ylabel="true")
    fig.tight_layout()
    return fig


def roc_curves(y_true: np.ndarray, probs: np.ndarray, aucs: dict[str, float]) -> Figure:
    """One-vs-rest ROC curve per class (`aucs`: each class's AUC, in the order of the columns of `probs`), AUC in
    the legend."""
    fig = Figure(figsize=(6.5, 6))
    ax = fig.subplots()
    for k, name in enumerate(aucs):
        positives = y_true == k
        if positives.any() and not positives.all():
            fpr, tpr, _ = roc_curve(positives, probs[:, k])
            ax.plot(fpr, tpr, label=f"{name} (AUC {aucs[name]:.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set(title="ROC per class (one-vs-rest)", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def reliability_diagram(table: dict, ece: float) -> Figure:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    fig = Figure(figsize=(5.5, 5.5))
    ax = fig.subplots()
    centres = (np.array(table["bin_lower"]) + np.array(table["bin_upper"])) / 2
    width = table["bin_upper"][0] - table["bin_lower"][0]
    ax.bar(centres, np.nan_to_num(table["accuracy"]), width=width * 0.9, alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfect calibration")
    ax.set(
        title=f"Reliability diagram (ECE {ece:.3f})",
        xlabel="confidence (top class)",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def slice_chart(slices) -> Figure:
    """Balanced accuracy per metadata slice; small slices are hatched and their size shown."""
    fig = Figure(figsize=(8, max(3, 0.28 * len(slices))))
    ax = fig.subplots()
    labels = [f"{c}={v} (n={n})" for c, v, n in zip(slices["column"], slices["value"], slices["n"])]
    bars = ax.barh(labels, slices["balanced_accuracy"], color="tab:blue")
    for bar, small in zip(bars, slices["small"]):
        if small:
            bar.set_hatch("//")
            bar.set_alpha(0.5)
    ax.invert_yaxis()
    ax.set(title="Balanced accuracy per slice (hatched: fewer than 30 images)", xlabel="balanced accuracy", xlim=(0, 1))
    fig.tight_layout()
    return fig


def grad_cam_grid(images: np.ndarray, cams: np.ndarray, titles: list[str], columns: int) -> Figure:
    """Images with their Grad-CAM heat-maps overlaid, `columns` per row. Each image's place is set in inches (side,
    room for its title, the figure's title), not by a layout engine: tight_layout measured every text (0.3 s)."""
    side = images.shape[2] / 100  # inches: one figure pixel per image pixel at matplotlib's 100 dpi
    gap, title_room, head = 0.1, 0.3, 0.5
    rows = max(1, -(-len(images) // columns))
    width, height = columns * (side + gap), rows * (side + title_room) + head + gap
    fig = Figure(figsize=(width, height))
    for i, (image, cam, title) in enumerate(zip(images, cams, titles)):
        row, column = divmod(i, columns)
        bottom = height - head - (row + 1) * (side + title_room)
        ax = fig.add_axes((((side + gap) * column + gap / 2) / width, bottom / height, side / width, side / height))
        ax.axis("off")
        ax.imshow(image.astype(np.uint8))
        ax.imshow(cam, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    fig.suptitle(
        "Grad-CAM (last conv layer) for the true class; title: true -> predicted (p)", y=1 - 0.15 / height, va="top"
    )
    return fig
