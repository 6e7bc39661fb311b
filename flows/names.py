"""Names of Prefect flow and task runs, after the stage and the recipe, so that the Prefect UI and the terminal say
which stage of which recipe ran (`pipeline best seed=1`, `train best seed=1`)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect.runtime import flow_run, task_run

from skinml.core.recipe import recipe


def recipe_label(parameters: dict[str, Any]) -> str:
    """The recipe's label from a run's `preset_name` and `overrides` parameters (the preset alone if they are bad:
    the flow itself then says why)."""
    preset_name = parameters.get("preset_name", "baseline")
    try:
        return recipe(preset_name, parameters.get("overrides")).label()
    except (ValueError, TypeError):
        return str(preset_name)


def pipeline_run_name() -> str:
    return f"pipeline {recipe_label(flow_run.parameters)}"


def sweep_run_name() -> str:
    parameters = flow_run.parameters
    return f"sweep {parameters.get('study_name')} {parameters.get('n_trials')} trials {recipe_label(parameters)}"


def retrain_run_name() -> str:
    """`retrain skinml 2026-12-07`: a scheduled run's date, as its MLflow run has it (the recipe is the champion's,
    known once the run reads it)."""
    return f"retrain {flow_run.parameters.get('model_name')} {date.today()}"


def read_run_name() -> str:
    """`read <folder>` for a local data folder, `download HAM10000` without one."""
    data_dir = task_run.parameters.get("data_dir")
    return f"read {Path(data_dir).name}" if data_dir else "download HAM10000"


def train_run_name() -> str:
    return f"train {task_run.parameters['config'].label()}"
