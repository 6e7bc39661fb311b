"""The sweep flow: an Optuna study over dropout and learning rate, then the best configuration retrained,
evaluated on the test split and registered as a challenger through the pipeline's own tasks."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.pipeline import download, evaluate_model, promote_challenger, register_model, train_model
from skinml.config import DEFAULT_EXPERIMENT, preset
from skinml.registry import DEFAULT_MODEL_NAME
from skinml.tune import SWEEP_EXPERIMENT, sweep


@task(cache_policy=NO_CACHE)
def run_sweep(data_dir: str, preset_name: str, overrides: dict, n_trials: int, metric: str, study_name: str,
              storage: str | None, timeout: float | None) -> dict:
    return sweep(data_dir, preset(preset_name).replace(**overrides), n_trials, metric, study_name, storage, timeout)


@flow(name="sweep", log_prints=True)
def sweep_flow(data_dir: str | None = None, preset_name: str = "baseline", overrides: dict | None = None,
               n_trials: int = 30, metric: str = "val_balanced_accuracy", study_name: str = "skinml-sweep",
               storage: str | None = None, timeout: float | None = None, retrain_best: bool = True,
               model_name: str = DEFAULT_MODEL_NAME, experiment: str = DEFAULT_EXPERIMENT) -> dict:
    """Sweep; then (unless retrain_best=False, as for extra workers) retrain the best, evaluate, register."""
    overrides = overrides or {}
    logger = get_run_logger()
    folder = download(data_dir)
    summary = run_sweep(folder, preset_name, overrides, n_trials, metric, study_name, storage, timeout)
    logger.info("best of %s: %s = %.4f with %s (baseline trial: %.4f)", study_name, metric,
                summary["best_value"], summary["best_params"], summary["baseline_value"])
    if not retrain_best:
        return summary
    best = {**overrides, **summary["best_params"]}
    parent = summary["parent_run_id"]
    trained = train_model(best, preset_name, folder, None, SWEEP_EXPERIMENT, parent)
    evaluated = evaluate_model(trained["model_uri"], SWEEP_EXPERIMENT, parent)
    registered = register_model(trained["model_uri"], model_name,
                                {k: evaluated[k] for k in ("balanced_accuracy", "macro_auc")})
    decision = promote_challenger(model_name, 0.0, experiment, parent)
    return {**summary, "best_model_uri": trained["model_uri"], "best_test_balanced_accuracy":
            evaluated["balanced_accuracy"], "best_test_macro_auc": evaluated["macro_auc"],
            "registry": registered, "promotion": decision}
