"""Optuna sweeps on synthetic data: nesting, baseline first, pruning, several workers, resuming."""

import os
import signal
import subprocess
import sys
import time

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from skinml.core.recipe import TrainConfig
from skinml.stages import sweep as tune
from skinml.stages.sweep import SWEEP_EXPERIMENT, open_storage, sweep

from ..conftest import IMAGE_SIZE


class PruneOddTrials(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return trial.number % 2 == 1


def base_config(weights: str) -> TrainConfig:
    return TrainConfig(weights=weights, image_size=IMAGE_SIZE, epochs=3, cached_views=1)


def test_sweep_nests_trials_under_one_parent_baseline_first(synthetic_dir, test_weights):
    summary = sweep(synthetic_dir, base_config(test_weights), n_trials=5, pruner=PruneOddTrials())
    parent = mlflow.get_run(summary["parent_run_id"])
    assert parent.data.tags["skinml.stage"] == "sweep"
    # the sweep is charted in its label set's compare view, with the runs of those classes only
    assert parent.data.tags["skinml.classes"] == ",".join(summary["classes"])
    experiment = mlflow.MlflowClient().get_experiment(parent.info.experiment_id)
    assert f"mlflow.sharedViewState.skinml-{'-'.join(summary['classes'])}" in experiment.tags
    trials = mlflow.search_runs(
        experiment_names=[SWEEP_EXPERIMENT], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(trials) == 5
    states = dict(zip(trials["params.trial_number"].astype(int), trials["tags.optuna.state"]))
    assert states == {0: "COMPLETE", 1: "PRUNED", 2: "COMPLETE", 3: "PRUNED", 4: "COMPLETE"}
    assert set(trials["status"]) == {"FINISHED"}  # a pruned trial's run ends normally
    first = trials[trials["params.trial_number"] == "0"].iloc[0]
    assert float(first["params.dropout"]) == 0.2 and float(first["params.learning_rate"]) == 1e-3
    assert summary["n_complete"] == 3 and summary["n_pruned"] == 2
    assert parent.data.metrics["best_value"] == summary["best_value"]
    assert parent.data.metrics["best_dropout"] == summary["best_params"]["dropout"]
    assert parent.data.tags["skinml.n_pruned_trials"] == "2" and "n_pruned_trials" not in parent.data.metrics
    assert parent.info.run_name == "sweep skinml-sweep 5 trials baseline size=32 epochs=3 views=1"
    assert sorted(trials["tags.mlflow.runName"])[0].startswith("trial 0 dropout=0.200 lr=1.00e-03")
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id, "sweep")}
    assert {"sweep/optimization_history.png", "sweep/param_importances.png", "sweep/summary.json"} <= artifacts
    history = mlflow.MlflowClient().get_metric_history(first["run_id"], "val_balanced_accuracy")
    assert [m.step for m in history] == [1, 2, 3]


WORKER = """
import sys
from skinml.core.recipe import TrainConfig
from skinml.stages.sweep import sweep
sweep(sys.argv[1], TrainConfig(weights=sys.argv[2], image_size=32, epochs=3, cached_views=1),
      n_trials=int(sys.argv[3]), study_name="shared", storage=sys.argv[4])
"""


def start_worker(synthetic_dir, weights, n_trials, storage, log):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(synthetic_dir), weights, str(n_trials), storage],
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def finished(storage: str) -> list:
    try:
        # open_storage retries when the worker is creating the database at that very moment
        study = optuna.load_study(study_name="shared", storage=open_storage(storage))
    except KeyError:
        return []
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def test_killed_sweep_resumes_and_completes_the_rest(synthetic_dir, test_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINML_SWEEP_HEARTBEAT_SECONDS", "1")  # the killed trial is failed 4 s after its last beat
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    with open(tmp_path / "w.log", "w") as log:
        worker = start_worker(synthetic_dir, test_weights, 8, storage, log)
        deadline = time.time() + 300
        while len(finished(storage)) < 2 and time.time() < deadline and worker.poll() is None:
            time.sleep(1)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    before = len(finished(storage))
    assert 2 <= before < 8
    sweep(synthetic_dir, base_config(test_weights), n_trials=8, study_name="shared", storage=storage)
    assert len(finished(storage)) == 8
    study = optuna.load_study(study_name="shared", storage=storage)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


def test_a_worker_joining_a_study_that_has_no_parent_run_gets_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(tune, "PARENT_WAIT_SECONDS", 1)
    study = optuna.create_study(study_name="orphan", storage=f"sqlite:///{tmp_path / 'study.db'}")  # not by skinml
    with pytest.raises(ValueError, match="study 'orphan' exists in the storage but has no MLflow parent run"):
        tune.parent_run_id(study, False, {}, experiment=SWEEP_EXPERIMENT, name="sweep orphan")
