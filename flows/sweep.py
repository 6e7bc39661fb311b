"""The sweep flow: an Optuna study over dropout and learning rate, then the best recipe through the challenger
sub-flow (retrained, evaluated on the test split, registered, promotion rule), all in the sweep's experiment."""

from __future__ import annotations

import mlflow
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import publish_result
from flows.challenger import run_challenger
from flows.names import sweep_run_name
from flows.stopping import stops_like_skinml
from flows.tasks import download
from skinml.core.recipe import (
    DEFAULT_MODEL_NAME,
    SWEEP_EXPERIMENT,
    SWEEP_METRICS,
    SWEEP_STUDY,
    SWEEP_TRIALS,
    TrainConfig,
    recipe,
)
from skinml.core.run_context import RunContext
from skinml.stages.sweep import sweep
from skinml.tracking.ui_view import view_url


@task(cache_policy=NO_CACHE, task_run_name="trials {study_name}")
def run_sweep(
    data_dir: str,
    config: TrainConfig,
    n_trials: int,
    *,
    metric: str,
    study_name: str,
    storage: str | None,
    timeout: float | None,
    experiment: str,
) -> dict:
    return sweep(
        data_dir,
        config,
        n_trials,
        metric=metric,
        study_name=study_name,
        storage=storage,
        timeout=timeout,
        experiment=experiment,
    )


@flow(name="sweep", flow_run_name=sweep_run_name, log_prints=True)
def sweep_flow(
    data_dir: str | None = None,
    preset_name: str = "baseline",
    overrides: dict | None = None,
    n_trials: int = SWEEP_TRIALS,
    metric: str = SWEEP_METRICS[0],
    study_name: str = SWEEP_STUDY,
    storage: str | None = None,
    timeout: float | None = None,
    retrain_best: bool = True,
    model_name: str = DEFAULT_MODEL_NAME,
    experiment: str = SWEEP_EXPERIMENT,
    promotion_margin: float = 0.0,
) -> dict:
    """Sweep; then (unless retrain_best=False, as for extra workers) the best recipe as a challenger."""
    with stops_like_skinml():
        config = recipe(preset_name, overrides)  # refuses a bad recipe before any work
        folder = download(data_dir)
        summary = run_sweep(
            folder,
            config,
            n_trials,
            metric=metric,
            study_name=study_name,
            storage=storage,
            timeout=timeout,
            experiment=experiment,
        )
        get_run_logger().info(
            "best of %s: %s = %.4f with %s (baseline trial: %.4f)",
            study_name,
            metric,
            summary["best_value"],
            summary["best_params"],
            summary["baseline_value"],
        )
        if not retrain_best:
            publish_result(summary, "sweep")
            return summary
        best = run_challenger(
            config.replace(**summary["best_params"]),
            folder,
            None,
            context=RunContext(experiment, summary["parent_run_id"]),
            model_name=model_name,
            promotion_margin=promotion_margin,
        )
        result = {
            **summary,
            "best_model_uri": best["train"]["model_uri"],
            "best_train_run_id": best["train"]["run_id"],
            "best_evaluate_run_id": best["evaluate"]["run_id"],
            "best_test_balanced_accuracy": best["evaluate"]["balanced_accuracy"],
            "best_test_macro_auc": best["evaluate"]["macro_auc"],
            "best_test_ci95": best["evaluate"]["ci95"],
            "registry": best["registry"],
            "promotion": best["promotion"],
            "mlflow_ui": view_url(mlflow.get_run(summary["parent_run_id"]).info.experiment_id, summary["classes"]),
        }
        publish_result(result, "sweep")
        return result
