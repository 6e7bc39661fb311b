"""What a parent run (pipeline, retrain, sweep) shows first in the MLflow UI: the headline metrics of its challenger,
a description saying what was trained, on which split, how it tested and what the registry did with it, and, on its
page, the challenger's dataset, logged model and registered version."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, RunTag

from skinml.core.names import MODEL_URI_TAG, TRAIN_RUN_ID_TAG
from skinml.core.recipe import TrainConfig
from skinml.evaluation.metrics import headline_metrics
from skinml.tracking.runs import file_under_label_set
from skinml.tracking.ui_view import FIGURES_TAG

# Recipe fields that may name a file: a description shows them as the run's parameter of that name does
PATH_FIELDS = ("weights",)


def run_name(recipe_label: str, folder: str | Path, classes: Sequence[str]) -> str:
    """A parent run's name, telling the runs of a list apart: recipe, data and label set ('baseline on ham10000,
    7 classes')."""
    return f"{recipe_label} on {Path(folder).name}, {len(classes)} classes"


def name_parent(parent_run_id: str, name: str, classes: Sequence[str]) -> str:
    """Name the parent run and file it under its label set (tracking.file_under_label_set); returns the link of that
    label set's compare view."""
    mlflow.MlflowClient().update_run(parent_run_id, name=name)
    return file_under_label_set(parent_run_id, classes)


def same_file(a: str, b: str) -> bool:
    """Whether two spellings of a path (relative to the working folder, or absolute) name the same file."""
    return bool(a) and bool(b) and Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def shown_overrides(config: TrainConfig, params: dict[str, str] | None = None) -> dict[str, Any]:
    """The recipe's changes from its preset, a path spelled as the run's logged parameter spells it (`mlflow run`
    logs `-P weights=...` as given; skinml resolves it)."""
    changes = config.preset_overrides()
    for name in PATH_FIELDS:
        logged = (params or {}).get(name, "")
        if name in changes and isinstance(changes[name], str) and same_file(logged, changes[name]):
            changes[name] = logged
    return changes


def parent_note(
    config: TrainConfig,
    trained: dict,
    tested: dict,
    *,
    registry: dict | None = None,
    promotion: dict | None = None,
    params: dict[str, str] | None = None,
) -> str:
    """The run description (Markdown) of a parent run whose challenger was trained with `config`; `params`: the
    parent run's logged parameters, whose spelling of a path the description keeps."""
    changed = ", ".join(f"{k}={v}" for k, v in shown_overrides(config, params).items()) or "none"
    low, high = tested["ci95"]["balanced_accuracy"]
    lines = [
        f"**Recipe** `{config.label()}`: preset `{config.preset}`, changed: {changed}.",
        f"**Split** manifest sha256 `{tested.get('manifest_sha256', '?')[:12]}`, {tested['n_images']} test "
        f"images; train run `{trained['run_id']}`.",
        f"**Test** balanced accuracy {tested['balanced_accuracy']:.3f} [{low:.3f}, {high:.3f}], macro AUC "
        f"{tested['macro_auc']:.3f}, ECE {tested['ece']:.3f}.",
    ]
    if trained.get("classes"):
        lines.insert(1, f"**Classes** {', '.join(trained['classes'])}.")
    if registry:
        lines.append(
            f"**Registry** `{registry['name']}` v{registry['version']} "
            f"({', '.join(registry['aliases'])}): {promotion['reason'] if promotion else 'registered'}."
        )
    return "\n\n".join(lines)


def figures_text(tested: dict) -> str:
    """The test figures to 3 decimals, as a tag: MLflow's UI shows metrics to 2 decimals in its compare view."""
    low, high = tested["ci95"]["balanced_accuracy"]
    return (
        f"balanced accuracy {tested['balanced_accuracy']:.3f} [{low:.3f}, {high:.3f}], "
        f"macro AUC {tested['macro_auc']:.3f}"
    )


def link_challenger(parent_run_id: str, train_run_id: str) -> None:
    """Show the challenger on its parent run's page: the train run's dataset inputs become inputs of the parent, its
    logged model an output of the parent. The UI lists a run's logged models from its inputs and outputs, and under
    "Registered models" the versions registered from those models (their `mlflow.modelVersions` tag, which
    registering sets). Logging again adds nothing."""
    client = mlflow.MlflowClient()
    train, parent = client.get_run(train_run_id), client.get_run(parent_run_id)
    if train.inputs.dataset_inputs:  # MLflow keeps one input per dataset and run
        client.log_inputs(parent_run_id, datasets=train.inputs.dataset_inputs)
    linked = {output.model_id for output in parent.outputs.model_outputs}  # each log_outputs call adds a row
    models = [output for output in train.outputs.model_outputs if output.model_id not in linked]
    if models:
        client.log_outputs(parent_run_id, models)


def summarize_parent(
    parent_run_id: str,
    config: TrainConfig,
    trained: dict,
    tested: dict,
    *,
    registry: dict | None = None,
    promotion: dict | None = None,
) -> None:
    """Log the headline metrics and the description on the parent run, and link the challenger's dataset and model."""
    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    params = client.get_run(parent_run_id).data.params
    note = parent_note(config, trained, tested, registry=registry, promotion=promotion, params=params)
    tags = {
        "mlflow.note.content": note,
        TRAIN_RUN_ID_TAG: trained["run_id"],
        MODEL_URI_TAG: trained["model_uri"],
        FIGURES_TAG: figures_text(tested),
    }
    client.log_batch(  # one call, not one per figure
        parent_run_id,
        metrics=[Metric(k, v, now, 0) for k, v in headline_metrics(tested, trained["metrics"]).items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    link_challenger(parent_run_id, trained["run_id"])
