"""What a parent run (pipeline, retrain, sweep) shows first in the MLflow UI: the headline metrics of its challenger
and a description saying what was trained, on which split, how it tested and what the registry did with it."""

from __future__ import annotations

import time

import mlflow
from mlflow.entities import Metric, RunTag

from skinml.config import TrainConfig
from skinml.metrics import headline_metrics


def describe(config: TrainConfig, trained: dict, tested: dict, registry: dict | None = None,
             promotion: dict | None = None) -> str:
    """The run description (Markdown) of a parent run whose challenger was trained with `config`."""
    changed = ", ".join(f"{k}={v}" for k, v in config.preset_overrides().items()) or "none"
    low, high = tested["ci95"]["balanced_accuracy"]
    lines = [f"**Recipe** `{config.label()}`: preset `{config.preset}`, changed: {changed}.",
             f"**Split** manifest sha256 `{tested.get('manifest_sha256', '?')[:12]}`, {tested['n_images']} test "
             f"images; train run `{trained['run_id']}`.",
             f"**Test** balanced accuracy {tested['balanced_accuracy']:.3f} [{low:.3f}, {high:.3f}], macro AUC "
             f"{tested['macro_auc']:.3f}, ECE {tested['ece']:.3f}."]
    if registry:
        lines.append(f"**Registry** `{registry['name']}` v{registry['version']} "
                     f"({', '.join(registry['aliases'])}): {promotion['reason'] if promotion else 'registered'}.")
    return "\n\n".join(lines)


def summarize_parent(parent_run_id: str, config: TrainConfig, trained: dict, tested: dict,
                     registry: dict | None = None, promotion: dict | None = None) -> None:
    """Log the headline metrics and the description on the parent run."""
    now = int(time.time() * 1000)
    tags = {"mlflow.note.content": describe(config, trained, tested, registry, promotion),
            "skinml.train_run_id": trained["run_id"], "skinml.model_uri": trained["model_uri"]}
    mlflow.MlflowClient().log_batch(  # one call, not one per figure
        parent_run_id, metrics=[Metric(k, v, now, 0) for k, v in headline_metrics(tested, trained["metrics"]).items()],
        tags=[RunTag(k, v) for k, v in tags.items()])
