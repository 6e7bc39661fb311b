"""A model card (Mitchell et al., 2019) for a logged skinml model, written only from what MLflow holds about it: the
training run's recipe and split, the evaluation runs' figures, slices and plots, the decisions the model ships with.
The intended use and the fixed limits are text kept in the repository (`model_card_use.md`, `model_card_limits.md`)."""

from __future__ import annotations

import base64
import re
import tempfile
from pathlib import Path

import markdown
import mlflow
import pandas as pd

from skinml.core.names import (
    DATA_FORMAT_TAG,
    EVAL_DATA_TAG,
    EVAL_LEFT_OUT_TAG,
    EVAL_SPLIT_TAG,
    GROUPED_BY_TAG,
    MANIFEST_RUN_ID_TAG,
    MANIFEST_SHA256_TAG,
    N_IMAGES_TAG,
    SLICES_ARTIFACT,
    point_name,
)
from skinml.core.recipe import SPLITS
from skinml.registry.card_audit import audit_section
from skinml.registry.card_decisions import (
    decisions_section,
    familiarity_section,
    flagged_part,
    interval,
    logged_figure,
)
from skinml.registry.evidence import evaluations_filter, evaluations_of
from skinml.tracking.logged_model import LoggedModel
from skinml.tracking.runs import download_run_artifact
from skinml.tracking.splits import run_manifest

USE_TEXT = Path(__file__).with_name("model_card_use.md")
LIMITS_TEXT = Path(__file__).with_name("model_card_limits.md")
CARD_ARTIFACTS = "model_card"
PLOTS = ("reliability_diagram.png", "operating_points.png", "deferral.png")
SMALL = 30  # fewer test images of a class than this: its figures are noted as uncertain


def evaluation_runs(model_uri: str) -> list:
    """The finished evaluation runs of a model, newest first: under the URI given, and under its logged model's
    own URI when the given one names a registered version."""
    match = re.fullmatch(r"models:/([^/@]+)(?:/(\d+)|@(\w+))", model_uri)
    if match and not match[1].startswith("m-"):  # a registered version: the registry's own lookup
        client = mlflow.MlflowClient()
        version = (
            client.get_model_version(match[1], match[2])
            if match[2]
            else client.get_model_version_by_alias(match[1], match[3])
        )
        runs = [mlflow.get_run(run_id) for run_id in evaluations_of(match[1], version)]
    else:
        runs = mlflow.search_runs(
            search_all_experiments=True, output_format="list", filter_string=evaluations_filter(model_uri)
        )
    return sorted(runs, key=lambda run: -run.info.start_time)


def data_section(train_run, classes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The training data's lines, and the classes with fewer than SMALL test images."""
    manifest = run_manifest(train_run.info.run_id)
    params, tags = train_run.data.params, train_run.data.tags
    counts = manifest.groupby(["dx", "split"]).agg(images=("image_id", "size"), groups=("lesion_id", "nunique"))
    layout = f"`{tags.get(DATA_FORMAT_TAG) or params.get('data_format', 'auto')}`"
    layout += " (recognised from the folder)" if layout == "`auto`" else ""  # a run from before the tag
    lines = [
        f"Source `{params.get('data_dir', '?')}`, layout {layout}, "
        f"label map `{params.get('label_map', 'none')}`; split `{manifest['split'].value_counts().to_dict()}`, "
        f"grouped by `{tags.get(GROUPED_BY_TAG, 'lesion_id')}` (a group on one side only), seed "
        f"{params.get('seed', '?')}, manifest sha256 `{tags.get(MANIFEST_SHA256_TAG, '?')[:12]}`.",
        "",
        "| class | train images (groups) | validation | test |",
        "|---|---|---|---|",
    ]
    for name in classes:
        cells = [
            f"{counts.loc[(name, part), 'images']} ({counts.loc[(name, part), 'groups']})"
            if (name, part) in counts.index
            else "0"
            for part in SPLITS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    tested = manifest.loc[manifest["split"] == "test", "dx"].value_counts()
    return lines, [name for name in classes if tested.get(name, 0) < SMALL]


def figures_section(test_run, classes: tuple[str, ...]) -> list[str]:
    metrics = test_run.data.metrics
    lines = [
        f"On the test split ({test_run.data.tags.get(N_IMAGES_TAG, '?')} images, evaluation run "
        f"`{test_run.info.run_id}`), 95% intervals from bootstrap resamples of whole groups (lesions or "
        "patients; images, where the data has no group column):",
        "",
        f"- balanced accuracy {interval(metrics, 'balanced_accuracy')}",
        f"- macro AUC {interval(metrics, 'macro_auc')}",
        f"- accuracy {logged_figure(metrics, 'accuracy'):.3f}, macro F1 {logged_figure(metrics, 'macro_f1'):.3f}",
        "",
        "| class | precision | recall [95%] | F1 | AUC |",
        "|---|---|---|---|---|",
    ]
    for name in classes:
        lines.append(
            f"| {name} | {logged_figure(metrics, 'precision', name):.3f} | "
            f"{interval(metrics, 'recall', name)} | {logged_figure(metrics, 'f1', name):.3f} | "
            f"{logged_figure(metrics, 'auc', name):.3f} |"
        )
    return lines


def slices_section(test_run) -> list[str]:
    try:
        slices = pd.read_csv(download_run_artifact(test_run.info.run_id, SLICES_ARTIFACT))
    except (mlflow.exceptions.MlflowException, OSError):
        return ["The data has no metadata to slice by."]
    lines = ["| by | value | images | accuracy | balanced accuracy |", "|---|---|---|---|---|"]
    for row in slices.itertuples():
        note = " (few images)" if row.small else ""
        lines.append(
            f"| {row.column} | {row.value} | {row.n}{note} | {row.accuracy:.3f} | {row.balanced_accuracy:.3f} |"
        )
    return lines


def own_test_evaluations(evaluations: list, train_run_id: str) -> list:
    """The evaluations of the model's own test split (not of a champion's split it was compared on), newest first."""
    return [
        run
        for run in evaluations
        if run.data.tags.get(EVAL_SPLIT_TAG) == "test"
        and run.data.tags.get(MANIFEST_RUN_ID_TAG, train_run_id) == train_run_id
    ]


def logged_plots(run) -> set[str]:
    """The file names of the plots an evaluation run logged."""
    return {Path(item.path).name for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}


def plot_link(plot: str, logged: set[str]) -> list[str]:
    """The Markdown lines of a plot beside the card, when its evaluation run logged it."""
    return [f"![{plot.removesuffix('.png').replace('_', ' ')}]({plot})", ""] if plot in logged else []


def referral_at_first_point(run, decisions: dict) -> str:
    """', at the first operating point: sensitivity ..., specificity ...' of an external evaluation."""
    if not decisions.get("operating_points"):
        return ""
    stem = point_name(decisions["operating_points"][0]["target_sensitivity"])
    return (
        f"; at the first operating point sensitivity {interval(run.data.metrics, f'{stem}_sensitivity')}, "
        f"specificity {interval(run.data.metrics, f'{stem}_specificity')}"
    )


def card_markdown(model: LoggedModel) -> tuple[str, str | None]:
    """The model card of a logged (or registered) model, as Markdown whose images are files beside it (PLOTS of the
    evaluation run named second: the model's latest of its own test split; None when it has none)."""
    model_uri = model.uri
    train_run = mlflow.get_run(model.training_run_id)
    classes, decisions = model.classes, model.decisions
    evaluations = evaluation_runs(model_uri)
    tests = own_test_evaluations(evaluations, train_run.info.run_id)
    external = [run for run in evaluations if run.data.tags.get(EVAL_SPLIT_TAG) == "whole folder"]
    start = (
        "pretrained on ImageNet"
        if train_run.data.params.get("weights", "imagenet") != "none"
        else "from random weights"
    )
    lines = [
        f"# Model card: `{model_uri}`",
        "",
        f"MobileNetV2 {start}, transfer-learned by skinml: recipe `{train_run.info.run_name}` "
        f"(training run `{train_run.info.run_id}`), {len(classes)} classes: {', '.join(classes)}.",
        "",
        USE_TEXT.read_text().strip(),
        "",
    ]
    data_lines, small = data_section(train_run, classes)
    lines += ["## Training data", "", *data_lines, "", *audit_section(train_run), ""]
    if tests:
        test = tests[0]
        metrics, logged = test.data.metrics, logged_plots(test)
        lines += [
            "## Figures",
            "",
            *figures_section(test, classes),
            "",
            "## Slices",
            "",
            *slices_section(test),
            "",
            "## Calibration",
            "",
            f"Expected calibration error on test {logged_figure(metrics, 'ece'):.3f} (15 bins, top-class confidence).",
            "",
            *plot_link("reliability_diagram.png", logged),
            "## Decisions",
            "",
            *decisions_section(test, decisions),
            "",
            *plot_link("operating_points.png", logged),
            *plot_link("deferral.png", logged),
            "## Unfamiliar images",
            "",
            *familiarity_section(test, model.familiarity),
            "",
        ]
        if small:
            lines += [
                f"Classes with fewer than {SMALL} test images ({', '.join(small)}): their figures are wide guesses.",
                "",
            ]
    else:
        lines += ["## Figures", "", "Not evaluated yet: `skinml evaluate --model-uri URI` logs the figures.", ""]
    lines += ["## External evaluations", ""]
    left_out = {
        run.info.run_id: f", left out: {run.data.tags[EVAL_LEFT_OUT_TAG]}"
        for run in external
        if EVAL_LEFT_OUT_TAG in run.data.tags
    }
    lines += [
        f"- `{run.data.tags.get(EVAL_DATA_TAG, '?')}` ({run.data.tags.get(N_IMAGES_TAG, '?')} images"
        f"{flagged_part(run)}"
        f"{left_out.get(run.info.run_id, '')}"
        f"): balanced accuracy {interval(run.data.metrics, 'balanced_accuracy')}, macro AUC "
        f"{interval(run.data.metrics, 'macro_auc')}{referral_at_first_point(run, decisions)}"
        for run in external
    ] or ["None logged."]
    lines += ["", LIMITS_TEXT.read_text().strip()]
    return "\n".join(lines) + "\n", tests[0].info.run_id if tests else None


def write_card(model: LoggedModel, dest: str | Path) -> dict[str, str]:
    """Write `model_card.md`, its plots and `model_card.html` (one self-contained file) into `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    text, test_run_id = card_markdown(model)
    (dest / "model_card.md").write_text(text)
    html_text = text
    for plot in (plot for plot in PLOTS if f"]({plot})" in text):  # the plots the card links, all logged
        image = download_run_artifact(test_run_id, f"plots/{plot}")
        (dest / plot).write_bytes(image.read_bytes())
        encoded = base64.b64encode(image.read_bytes()).decode()
        html_text = html_text.replace(f"]({plot})", f"](data:image/png;base64,{encoded})")
    body = markdown.markdown(html_text, extensions=["tables"])
    (dest / "model_card.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Model card</title><style>body{font-family:sans-serif;"
        "max-width:60em;margin:2em auto;line-height:1.45}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.2em .6em;text-align:left}img{max-width:100%}code{background:#f4f4f4}</style></head><body>"
        f"{body}</body></html>\n"
    )
    return {"markdown": str(dest / "model_card.md"), "html": str(dest / "model_card.html")}


def log_card(model_uri: str) -> str:
    """Write the card and log it among the training run's artifacts (`model_card/`); returns the run id."""
    model = LoggedModel.resolve(model_uri)
    run_id = model.training_run_id
    with tempfile.TemporaryDirectory(prefix="skinml-card-") as tmp:
        write_card(model, tmp)
        mlflow.MlflowClient().log_artifacts(run_id, tmp, CARD_ARTIFACTS)
    return run_id
