"""Optuna sweeps over the head's dropout and learning rate around the baseline, tracked in MLflow.

One study = one parent MLflow run (experiment `skinml-sweeps`), each trial a nested run with its params, per-epoch
metrics and state (complete or pruned). Trials train the head on cached backbone features: the backbone never runs
again for a trial. With a shared `--storage` (SQLite for one machine, PostgreSQL/MySQL for many) several
`skinml sweep` processes with one `--study-name` split the trials of one study; a sweep that was interrupted resumes
where it stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from pathlib import Path

import keras
import mlflow
import numpy as np
import optuna
import sqlalchemy
from optuna.trial import TrialState

from skinml.core import settings
from skinml.core.errors import OptionError
from skinml.core.names import (
    BEST_PARAMETER_PREFIX,
    BEST_VALUE_METRIC,
    CLOSED_BECAUSE_TAG,
    N_COMPLETE_TRIALS_TAG,
    N_PRUNED_TRIALS_TAG,
    STUDY_TAG,
    SWEEP_SUMMARY_ARTIFACT,
)
from skinml.core.recipe import SWEEP_EXPERIMENT, SWEEP_METRICS, SWEEP_STUDY, SWEEP_TRIALS, TrainConfig
from skinml.core.run_context import RunContext
from skinml.data.split import read_manifest
from skinml.data.training_set import labelled_split
from skinml.features.cache import FeatureCache
from skinml.stages.grouping import regroup_for
from skinml.tracking.runs import dump_json, file_under_label_set, log_epoch, log_params_once, stage_run
from skinml.tracking.splits import log_manifest
from skinml.training.fit import cached_features
from skinml.training.head import train_head

log = logging.getLogger(__name__)
PARENT_RUN_ATTR = "mlflow_parent_run_id"
PARENT_WAIT_SECONDS = 60  # how long a joining worker waits for the creating worker to record the parent run
TRIAL_RUN_ATTR = "mlflow_run_id"
DROPOUT_RANGE = (0.0, 0.7)
LEARNING_RATE_RANGE = (1e-5, 1e-2)


class Pruning:
    """Reports an epoch's objective to Optuna and says whether its pruner gives the trial up; training's validation
    callback (skinml.training.head.EpochMetrics) calls it with the figures it has just computed, and stops when it
    says so."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric, self.pruned = trial, metric, False

    def __call__(self, epoch: int, metrics: dict[str, float]) -> bool:
        self.trial.report(metrics[self.metric], step=epoch + 1)
        self.pruned = self.trial.should_prune()
        return self.pruned


class RetryStaleTrial(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a trial whose worker died, which also closes that trial's MLflow run (KILLED)."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        super().__call__(study, trial)
        run_id = trial.user_attrs.get(TRIAL_RUN_ATTR)
        if run_id:
            client = mlflow.MlflowClient()
            client.set_tag(run_id, CLOSED_BECAUSE_TAG, "its worker stopped sending Optuna heartbeats")
            client.set_terminated(run_id, "KILLED")


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """Optuna's RDB storage for `url` (None: in memory), with heartbeats so that the trial of a killed worker is
    marked failed after a grace period (4 heartbeats, SKINML_SWEEP_HEARTBEAT_SECONDS apart, default 30) and retried
    once. Several workers may create a new database at once: the losers of that race retry."""
    # heartbeats, their retry callback and fail_stale_trials are Optuna features marked experimental: their warnings
    # say nothing a user can act on (they printed at every sweep, in-memory studies included)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if url is None:
        return None
    interval = settings.positive_int("SKINML_SWEEP_HEARTBEAT_SECONDS")
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=interval,
                grace_period=4 * interval,
                heartbeat_stale_trial_callback=RetryStaleTrial(max_retry=1),
            )
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            if attempt == 4:
                raise
            time.sleep(1 + attempt)


def open_study(
    study_name: str,
    storage: str | None,
    *,
    seed: int,
    base: TrainConfig,
    pruner: optuna.pruners.BasePruner | None = None,
) -> tuple[optuna.Study, bool]:
    """Create the study (returns created=True) or join the existing one of that name."""
    storage = open_storage(storage)
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)
    try:
        study = optuna.create_study(
            study_name=study_name, storage=storage, direction="maximize", sampler=sampler, pruner=pruner
        )
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner), False
    study.enqueue_trial({"dropout": base.dropout, "learning_rate": base.learning_rate})  # the baseline first
    return study, True


def parent_run_id(study: optuna.Study, created: bool, params: dict, *, experiment: str, name: str) -> str:
    """The sweep's parent MLflow run: made by the process that created the study, found by the others."""
    if created:  # under `mlflow run`, its run (in the experiment it was given) becomes the parent
        with stage_run("sweep", RunContext(experiment), tags={STUDY_TAG: study.study_name}, name=name) as run:
            log_params_once(params)
        study.set_user_attr(PARENT_RUN_ATTR, run.info.run_id)
        return run.info.run_id
    for _ in range(PARENT_WAIT_SECONDS):  # the creating worker sets it right after creating the study
        run_id = study.user_attrs.get(PARENT_RUN_ATTR)  # read from the storage at each access
        if run_id:
            return run_id
        time.sleep(1)
    raise OptionError(
        f"study {study.study_name!r} exists in the storage but has no MLflow parent run recorded "
        f"(not made by skinml sweep, or its first worker died while starting): choose another "
        f"--study-name or delete the study"
    )


def log_study_summary(study: optuna.Study, parent_id: str, metric: str) -> dict:
    """Best trial and Optuna's plots on the parent run (re-logged by each worker as the study grows)."""
    # lazy: plotting libraries for the summary only; pyplot after its backend is set
    import matplotlib

    matplotlib.use("Agg")  # Optuna draws with pyplot: off-screen, whatever the user's default backend
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = study.best_trial
    summary = {
        "best_value": best.value,
        "best_trial": best.number,
        "best_params": best.params,
        "metric": metric,
        "n_complete": len(finished),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in study.trials),
        "baseline_value": study.trials[0].value,
    }
    client = mlflow.MlflowClient()
    client.log_batch(
        parent_id,
        metrics=[
            mlflow.entities.Metric(k, float(v), int(time.time() * 1000), 0)
            for k, v in {
                BEST_VALUE_METRIC: best.value,
                **{BEST_PARAMETER_PREFIX + k: v for k, v in best.params.items()},
            }.items()
        ],
        tags=[
            mlflow.entities.RunTag(N_COMPLETE_TRIALS_TAG, str(summary["n_complete"])),
            mlflow.entities.RunTag(N_PRUNED_TRIALS_TAG, str(summary["n_pruned"])),
        ],
    )
    client.log_dict(parent_id, summary, SWEEP_SUMMARY_ARTIFACT)
    plots = {
        "optimization_history": lambda: optuna_plots.plot_optimization_history(study),
        "contour_dropout_learning_rate": lambda: optuna_plots.plot_contour(study, params=["dropout", "learning_rate"]),
    }
    if len(finished) >= 2:
        plots["param_importances"] = lambda: optuna_plots.plot_param_importances(study)
    for name, draw in plots.items():
        try:
            axes = draw()
        except (ValueError, RuntimeError) as exc:  # e.g. too few finished trials for a contour
            log.warning("no %s plot: %s", name, exc)
            continue
        figure = np.ravel(axes)[0].figure if isinstance(axes, np.ndarray) else axes.figure
        client.log_figure(parent_id, figure, f"sweep/{name}.png")
        plt.close(figure)
    return summary


def run_trials(study: optuna.Study, objective, n_trials: int, timeout: float | None = None) -> None:
    """Run trials until the study (all workers together) has `n_trials` finished (complete or pruned) ones, or
    `timeout` seconds have passed. A trial starts only while finished + running trials are fewer than `n_trials`, so
    workers joining late never exceed it; while the last trials run elsewhere this worker waits, so that the trial of
    a worker that died is failed (heartbeat) and retried here."""
    deadline = time.time() + timeout if timeout else None
    while deadline is None or time.time() < deadline:
        optuna.storages.fail_stale_trials(study)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        finished = sum(state in (TrialState.COMPLETE, TrialState.PRUNED) for state in states)
        if finished >= n_trials:
            return
        if finished + states.count(TrialState.RUNNING) >= n_trials:
            time.sleep(1)  # the last trials run on other workers
            continue
        study.optimize(objective, n_trials=1, catch=(), gc_after_trial=True)


def sweep(
    data_dir: str | Path,
    base: TrainConfig,
    n_trials: int = SWEEP_TRIALS,
    *,
    metric: str = SWEEP_METRICS[0],
    study_name: str = SWEEP_STUDY,
    storage: str | None = None,
    timeout: float | None = None,
    manifest_path: str | Path | None = None,
    experiment: str = SWEEP_EXPERIMENT,
    cache: FeatureCache | None = None,
    output: str | Path | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> dict:
    """Run (this worker's share of) a sweep; returns the study summary."""
    if metric not in SWEEP_METRICS:
        raise OptionError(f"unknown metric {metric!r}; choose one of {SWEEP_METRICS}")
    if not base.feature_cache:
        raise OptionError("sweeps train heads on cached features: feature_cache must be on")
    study, created = open_study(study_name, storage, seed=base.seed, base=base, pruner=pruner)
    manifest = read_manifest(manifest_path) if manifest_path else None
    data, manifest, classes = labelled_split(data_dir, manifest, base, regroup=regroup_for(base))
    parent_id = parent_run_id(
        study,
        created,
        {
            **base.params(),
            "n_trials": n_trials,
            "metric": metric,
            "study_name": study_name,
            "storage": storage or "in-memory",
            "data_dir": str(Path(data_dir).resolve()),
        },
        experiment=experiment,
        name=f"sweep {study_name} {n_trials} trials {base.label()}",
    )
    if created:
        with mlflow.start_run(run_id=parent_id):
            log_manifest(manifest, data_dir)
        file_under_label_set(parent_id, classes)
    _, train_x, val_x = cached_features(base, data, cache)
    labels = {part: data.loc[data["split"] == part, "label"].to_numpy() for part in ("train", "val")}

    def objective(trial: optuna.Trial) -> float:
        config = base.replace(
            dropout=trial.suggest_float("dropout", *DROPOUT_RANGE),
            learning_rate=trial.suggest_float("learning_rate", *LEARNING_RATE_RANGE, log=True),
        )
        keras.utils.set_random_seed(config.seed)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        history: dict[str, list[float]] = {}
        with stage_run(
            "trial",
            RunContext(experiment, parent_id),
            tags={"optuna.trial": str(trial.number)},
            name=f"trial {trial.number} dropout={config.dropout:.3f} lr={config.learning_rate:.2e}",
        ) as run:
            trial.set_user_attr(TRIAL_RUN_ATTR, run.info.run_id)
            mlflow.log_params(
                {"dropout": config.dropout, "learning_rate": config.learning_rate, "trial_number": trial.number}
            )
            pruner = Pruning(trial, metric)
            train_head(
                config,
                train_x,
                labels["train"],
                val_x,
                labels["val"],
                classes,
                history,
                on_epoch=log_epoch,
                stop_when=pruner,
            )
            mlflow.set_tag("optuna.state", "PRUNED" if pruner.pruned else "COMPLETE")
        if pruner.pruned:  # raised after its run ended: a pruned trial's run is FINISHED, its state in the tag
            raise optuna.TrialPruned()
        return history[metric][-1]  # the last epoch: what retraining with these params gives

    run_trials(study, objective, n_trials, timeout)
    summary = {
        **log_study_summary(study, parent_id, metric),
        "parent_run_id": parent_id,
        "study_name": study_name,
        "classes": list(classes),
    }
    dump_json(summary, output)
    return summary
