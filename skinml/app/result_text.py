"""What a command that trains, evaluates or runs a pipeline says on a terminal: the headline figures (those of the
README's table), what the registry did and where to look, in a few lines. The whole result is JSON: printed when
the output is not a terminal (a pipe, a file, a test), and written by `--output FILE`."""

from __future__ import annotations

import math
from typing import Any

from skinml.core.names import VAL, metric_name


def _interval(tested: dict, key: str) -> str:
    bounds = (tested.get("ci95") or {}).get(key)
    return f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if isinstance(bounds, list) and None not in bounds else ""


def _figure(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def test_lines(tested: dict) -> list[str]:
    """The evaluation's headline figures with their 95% intervals, and the recall of each class."""
    lines = [
        f"{tested.get('eval_split', 'test')} ({tested.get('n_images', '?')} images): balanced accuracy "
        f"{_figure(tested.get('balanced_accuracy'))}{_interval(tested, 'balanced_accuracy')}, macro AUC "
        f"{_figure(tested.get('macro_auc'))}{_interval(tested, 'macro_auc')}, accuracy "
        f"{_figure(tested.get('accuracy'))}, macro F1 {_figure(tested.get('macro_f1'))}, ECE "
        f"{_figure(tested.get('ece'))}"
    ]
    recalls = {name: values.get("recall") for name, values in (tested.get("per_class") or {}).items()}
    if recalls:
        lines.append("recall " + ", ".join(f"{name} {_figure(value)}" for name, value in recalls.items()))
    return lines


def summary(result: dict, output: str | None = None) -> str | None:
    """A few lines for a person, or None for a result that has no headline figures (then the JSON is printed)."""
    tested = (
        result.get("evaluate")
        if isinstance(result.get("evaluate"), dict)
        else (result if "balanced_accuracy" in result else None)
    )
    trained = (
        result.get("train")
        if isinstance(result.get("train"), dict)
        else (result if "model_uri" in result and "metrics" in result else None)
    )
    if tested is None and trained is None:
        return None
    lines = []
    if trained is not None:
        validation = trained.get("metrics", {}).get(metric_name(VAL, "balanced_accuracy"))
        lines.append(
            f"trained {trained.get('model_uri')} (run {trained.get('run_id')}): validation balanced "
            f"accuracy {_figure(validation)}"
        )
    if tested is not None:
        lines += test_lines(tested)
    registry = result.get("registry")
    if isinstance(registry, dict):
        lines.append(f"registered {registry['name']} v{registry['version']} ({', '.join(registry['aliases'])})")
    promotion = result.get("promotion")
    if isinstance(promotion, dict) and promotion.get("reason"):
        lines.append(f"promotion: {promotion['reason']}")
    if result.get("mlflow_ui"):
        lines.append(f"MLflow UI (run `mlflow ui` in this folder): {result['mlflow_ui']}")
    lines.append(
        f"the whole result: {output}" if output else "the whole result as JSON: --output FILE, or pipe the command"
    )
    return "\n".join(lines)
