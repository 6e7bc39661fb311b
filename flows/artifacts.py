"""What a pipeline, retrain or sweep flow run shows in its Artifacts tab in Prefect's UI: the headline test figures,
the promotion decision with its interval, and links to the MLflow runs and the registered version.

Rendered from the dict the flow returns, whatever of it is there: no registry (`model_name=None`), no comparison
(the first version), a sweep without retraining.
"""

from __future__ import annotations

import logging
import urllib.parse

import mlflow
from mlflow.exceptions import MlflowException
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from skinml.core.names import AUDIT_PAGE_ARTIFACT
from skinml.tracking.ui_view import MODEL_TRAINING, run_url, ui_base

log = logging.getLogger(__name__)

TEST_FIGURES = (
    ("balanced_accuracy", "balanced accuracy"),
    ("macro_auc", "macro AUC"),
    ("macro_f1", "macro F1"),
    ("ece", "ECE"),
    ("accuracy", "accuracy"),
)


def version_url(name: str, version: str, tracking_uri: str | None = None) -> str:
    """A registered version's page, in the UI's model-training mode (as skinml.tracking.ui_view.run_url)."""
    return (
        f"{ui_base(tracking_uri)}/#/models/{urllib.parse.quote(name, safe='')}/versions/{version}"
        f"?{urllib.parse.urlencode(MODEL_TRAINING)}"
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _interval(value: object) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_number(v) is not None for v in value):
        return float(value[0]), float(value[1])
    return None


def tested_figures(result: dict) -> dict:
    """The challenger's test figures: the pipeline's and retrain's `evaluate`, or the sweep's `best_test_*`."""
    if isinstance(result.get("evaluate"), dict):
        return result["evaluate"]
    return {key: result[f"best_test_{key}"] for key in (*dict(TEST_FIGURES), "ci95") if f"best_test_{key}" in result}


def figure_rows(result: dict) -> list[dict]:
    """Rows {figure, value, ci95_low, ci95_high} of the test figures, the sweep's and the promotion's."""
    rows = []

    def add(figure: str, value: object, interval: object = None) -> None:
        if _number(value) is not None:
            low, high = _interval(interval) or (None, None)
            rows.append(
                {
                    "figure": figure,
                    "value": round(_number(value), 4),
                    "ci95_low": None if low is None else round(low, 4),
                    "ci95_high": None if high is None else round(high, 4),
                }
            )

    tested = tested_figures(result)
    for key, label in TEST_FIGURES:
        add(f"test {label}", tested.get(key), (tested.get("ci95") or {}).get(key))
    metric = result.get("metric", "sweep metric")
    add(f"best trial {metric}", result.get("best_value"))
    add(f"baseline trial {metric}", result.get("baseline_value"))
    promotion = result.get("promotion") or {}
    for role in ("champion", "challenger"):
        version = promotion.get(f"{role}_version")
        add(f"{role} v{version} balanced accuracy", promotion.get(f"{role}_balanced_accuracy"))
    add("challenger minus champion balanced accuracy", promotion.get("difference"), promotion.get("difference_ci95"))
    return rows


def _with_interval(value: float, interval: object, sign: str = "") -> str:
    bounds = _interval(interval)
    text = f"{value:{sign}.4f}"
    return f"{text} [{bounds[0]:{sign}.4f}, {bounds[1]:{sign}.4f}]" if bounds else text


def promotion_lines(promotion: dict) -> list[str]:
    """The promotion's decision: its reason, which states the gain and its interval once
    (skinml.registry.promotion.promote); the figures alone where a result has no reason."""
    if not promotion:
        return []
    decision = "promoted" if promotion.get("promoted") else "not promoted"
    lines = [f"**Promotion**: {decision}. {promotion.get('reason', '')}".rstrip()]
    difference = _number(promotion.get("difference"))
    if difference is not None and not promotion.get("reason"):
        margin = promotion.get("margin")
        sample = (
            f" over {promotion['n_images']} images, {promotion['n_lesions']} lesions"
            if "n_images" in promotion and "n_lesions" in promotion
            else ""
        )
        lines.append(
            f"Challenger v{promotion.get('challenger_version', '?')} minus champion "
            f"v{promotion.get('champion_version', '?')} balanced accuracy: "
            f"{_with_interval(difference, promotion.get('difference_ci95'), '+')} (95% interval, paired "
            f"lesion bootstrap{sample})" + (f"; margin {margin}." if margin is not None else ".")
        )
    return lines


def experiment_of(run_id: str, tracking_uri: str | None = None) -> str | None:
    """The run's experiment: not always the flow's (retraining compares with the champion's evaluation run, which
    can be in the pipeline's experiment)."""
    try:
        return mlflow.MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    except MlflowException:
        return None


def link_lines(result: dict, flow: str, tracking_uri: str | None = None) -> list[str]:
    promotion = result.get("promotion") or {}
    compared = promotion.get("evaluation_run_ids") or {}
    runs = [
        (f"{flow} run", result.get("parent_run_id")),
        ("train run", (result.get("train") or {}).get("run_id") or result.get("best_train_run_id")),
        ("evaluation run", (result.get("evaluate") or {}).get("run_id") or result.get("best_evaluate_run_id")),
        ("promotion run", promotion.get("promotion_run_id")),
        *(
            (f"{role} v{promotion.get(f'{role}_version', '?')}'s evaluation", compared.get(role))
            for role in ("champion", "challenger")
        ),
    ]
    links, seen = [], set()
    for text, run_id in runs:
        if not isinstance(run_id, str) or not run_id or run_id in seen:
            continue
        experiment_id = experiment_of(run_id, tracking_uri)
        if experiment_id is not None:
            seen.add(run_id)
            links.append(f"[{text}]({run_url(experiment_id, run_id, tracking_uri)})")
    registry = result.get("registry") or {}
    if registry.get("name") and registry.get("version"):
        aliases = f" ({', '.join(registry['aliases'])})" if registry.get("aliases") else ""
        links.append(
            f"[registered {registry['name']} v{registry['version']}{aliases}]"
            f"({version_url(registry['name'], registry['version'], tracking_uri)})"
        )
    if result.get("mlflow_ui"):
        links.append(f"[compare view]({result['mlflow_ui']})")
    return [f"**MLflow**: {' · '.join(links)}"] if links else []


def result_markdown(result: dict, flow: str, tracking_uri: str | None = None) -> str:
    """The flow run's result as Markdown."""
    lines = [f"# {flow} result"]
    tested = tested_figures(result)
    intervals = tested.get("ci95") or {}
    figures = [
        f"{label} {_with_interval(_number(tested[key]), intervals.get(key))}"
        for key, label in TEST_FIGURES
        if _number(tested.get(key)) is not None
    ]
    if figures:
        images = f" ({tested['n_images']} images)" if "n_images" in tested else ""
        how = " (95% intervals: lesion bootstrap)" if any(_interval(v) for v in intervals.values()) else ""
        lines.append(f"**Test**{images}: {', '.join(figures)}{how}.")
    if _number(result.get("best_value")) is not None:
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (result.get("best_params") or {}).items()
        )
        baseline = _number(result.get("baseline_value"))
        lines.append(
            f"**Sweep** `{result.get('study_name', '?')}`: best {result.get('metric', 'value')} "
            f"{result['best_value']:.4f} (trial {result.get('best_trial', '?')}: {params})"
            + (f"; baseline trial {baseline:.4f}" if baseline is not None else "")
            + f"; {result.get('n_complete', '?')} complete, {result.get('n_pruned', '?')} pruned trials."
        )
    lines += promotion_lines(result.get("promotion") or {})
    lines += link_lines(result, flow, tracking_uri)
    return "\n\n".join(lines)


AUDIT_COUNTS = (
    ("exact_duplicate_pairs", "exact duplicate pairs"),
    ("near_duplicate_pairs", "near-duplicate pairs"),
    ("missed_duplicate_pairs", "duplicate pairs under two group ids"),
    ("groups_of_several_images", "groups of several images"),
    ("label_suspects", "label suspects"),
)


def audit_markdown(summary: dict, tracking_uri: str | None = None) -> str:
    """The audit stage's counts and where its page is, as Markdown."""
    counts = [f"- {label}: {summary[key]}" for key, label in AUDIT_COUNTS if key in summary]
    experiment = experiment_of(summary["run_id"], tracking_uri) if summary.get("run_id") else None
    run = f"[the audit run]({run_url(experiment, summary['run_id'], tracking_uri)})" if experiment else "the audit run"
    page = f"The page with the pairs, groups and suspects side by side: `{AUDIT_PAGE_ARTIFACT}` of {run}."
    return "\n".join([f"# audit of {summary.get('images', '?')} images", *counts, "", page])


def publish_audit(summary: dict, tracking_uri: str | None = None) -> None:
    """The audit stage's Prefect artifact `audit` (Markdown); a failure is logged, never raised."""
    try:
        create_markdown_artifact(audit_markdown(summary, tracking_uri), key="audit", description="The data audit")
    except Exception as exc:  # noqa: BLE001 - a display must not fail the pipeline
        log.warning("no Prefect artifact for this audit: %s", exc)


def publish_result(result: dict, flow: str, tracking_uri: str | None = None) -> None:
    """Create the flow run's artifacts: `<flow>-result` (Markdown) and `<flow>-figures` (a table). A failure is
    logged, never raised: the run's outcome is in MLflow already."""
    try:
        create_markdown_artifact(
            result_markdown(result, flow, tracking_uri),
            key=f"{flow}-result",
            description=f"The {flow} run's figures, promotion decision and MLflow links",
        )
        rows = figure_rows(result)
        if rows:
            create_table_artifact(rows, key=f"{flow}-figures", description=f"The {flow} run's figures")
    except Exception as exc:  # noqa: BLE001 - a display must not fail hours of training
        log.warning("no Prefect artifact for this %s run: %s", flow, exc)
