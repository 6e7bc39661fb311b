"""The model card's sections on what the model decides: referral and deferral at the thresholds chosen on
validation, and the images it flags as unfamiliar, with their figures on test (skinml.registry.model_card)."""

from __future__ import annotations

import math

from skinml.core.names import (
    DEFER,
    FAMILIAR,
    TEST,
    UNFAMILIAR,
    UNFAMILIAR_SHARE,
    interval_name,
    metric_name,
    point_name,
)
from skinml.evaluation.decisions import FIGURES, defers_everything


def interval(metrics: dict, figure: str, label: str = "") -> str:
    """'0.675 [0.613, 0.734]' from a test metric and its logged interval; '—' when not logged."""
    if metric_name(TEST, figure, label) not in metrics:
        return "—"
    low, high = (metrics.get(interval_name(TEST, figure, end, label)) for end in ("low", "high"))
    return f"{metrics[metric_name(TEST, figure, label)]:.3f}" + (
        f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    )


def logged_figure(metrics: dict, name: str, label: str = "") -> float:
    """A test metric; NaN when not logged."""
    return metrics.get(metric_name(TEST, name, label), float("nan"))


def decisions_section(test_run, decisions: dict) -> list[str]:
    metrics, lines = test_run.data.metrics, []
    if decisions.get("operating_points"):
        group = "+".join(decisions["positive_classes"])
        lines += [
            f"Refer when P({group}) is at or above the threshold chosen on the validation split for each target "
            "sensitivity; on test:",
            "",
            "| target sensitivity | threshold | sensitivity | specificity | PPV | NPV | referral rate |",
            "|---|---|---|---|---|---|---|",
        ]
        for point in decisions["operating_points"]:
            cells = [interval(metrics, f"{point_name(point['target_sensitivity'])}_{name}") for name in FIGURES]
            lines.append(
                f"| {point['target_sensitivity']:.2f} | {point['threshold']:.3f} | " + " | ".join(cells) + " |"
            )
        lines.append("")
    if decisions.get("deferral"):
        deferral, kept = decisions["deferral"], logged_figure(metrics, f"{DEFER}_balanced_accuracy")
        if defers_everything(deferral):
            lines.append(
                f"Defer (look again): no confidence level kept validation images at a balanced accuracy of "
                f"{deferral['target_balanced_accuracy']:.2f}, so the model ships no deferral (its answers "
                "carry no `defer`); a lower `--target-balanced-accuracy` sets a usable level."
            )
        else:
            lines.append(
                f"Defer (look again) when the model's confidence is below {deferral['confidence']:.3f}, "
                f"chosen on validation for a balanced accuracy of {deferral['target_balanced_accuracy']:.2f} "
                f"on the images kept; on test it keeps {logged_figure(metrics, f'{DEFER}_coverage'):.1%} of "
                f"the images, at balanced accuracy {'n/a' if math.isnan(kept) else f'{kept:.3f}'}."
            )
    return lines or ["The model ships no decisions."]


def familiarity_section(test_run, summary: dict) -> list[str]:
    """What the model flags as unfamiliar (its MLmodel metadata `summary`) and the figures on test with and without
    the flagged images."""
    if not summary:
        return ["This model was logged before skinml scored familiarity: it flags no image as unfamiliar."]
    metrics = test_run.data.metrics
    lines = [
        f"An image farther than {summary['threshold']:.3f} from the training images ({summary['method']}, among "
        f"{summary['reference_images']:,} of them) is flagged `unfamiliar`: its answer is `defer: true` and its "
        f"`refer` is null. The threshold keeps {summary['target_familiar']:.0%} of the validation images familiar."
    ]
    if metric_name(TEST, UNFAMILIAR_SHARE) in metrics:
        without = {f: logged_figure(metrics, f"{FAMILIAR}_{f}") for f in ("balanced_accuracy", "macro_auc")}
        flagged = logged_figure(metrics, f"{UNFAMILIAR}_balanced_accuracy")
        lines += [
            "",
            f"On test, {logged_figure(metrics, UNFAMILIAR_SHARE):.1%} of the images are flagged; without them "
            f"balanced accuracy {without['balanced_accuracy']:.3f} (all images: "
            f"{logged_figure(metrics, 'balanced_accuracy'):.3f}), macro AUC {without['macro_auc']:.3f} (all: "
            f"{logged_figure(metrics, 'macro_auc'):.3f})"
            + ("." if math.isnan(flagged) else f"; on the flagged images alone balanced accuracy {flagged:.3f}."),
        ]
    return lines


def flagged_part(run) -> str:
    """', 3.2% flagged unfamiliar' for an evaluation run that scored familiarity."""
    share = run.data.metrics.get(metric_name(TEST, UNFAMILIAR_SHARE))
    return "" if share is None else f", {share:.1%} flagged unfamiliar"
