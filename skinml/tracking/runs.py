"""MLflow run handling shared by the stages: one experiment per purpose, stage runs nested under a parent.

Tracking honours MLFLOW_TRACKING_URI; when unset, MLflow's own default (a SQLite file in the working folder).
A run whose body raises is ended FAILED (mlflow.start_run's context manager does that).
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import signal
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import mlflow

from skinml.core.names import CLASSES_TAG, CLOSED_BECAUSE_TAG, HOST_TAG, PID_TAG, STAGE_TAG
from skinml.core.processes import process_exists
from skinml.core.run_context import RunContext
from skinml.tracking.ui_view import view_json, view_tag, view_url

# What MLflow 3 records for a model-training experiment (its UI picks the experiment's default tab from it; the
# GenAI / model-training switch itself is a browser setting, docs/mlflow.md)
EXPERIMENT_KIND = "custom_model_development"


@contextlib.contextmanager
def stage_run(
    stage: str, context: RunContext = RunContext(), *, tags: dict[str, str] | None = None, name: str | None = None
) -> Iterator[mlflow.ActiveRun]:
    """Start (or resume, under `mlflow run`) the MLflow run of one stage, named `name` (default: the stage), in the
    context's experiment, nested under its parent run if it has one."""
    experiment, parent_run_id = context.experiment, context.parent_run_id
    tags = {STAGE_TAG: stage, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), **(tags or {})}
    name = name or stage
    active = mlflow.active_run()
    if parent_run_id:
        experiment_id = mlflow.get_run(parent_run_id).info.experiment_id
        nested = active is not None and active.info.run_id == parent_run_id
        with (
            mlflow.start_run(
                experiment_id=experiment_id, run_name=name, nested=nested, parent_run_id=parent_run_id, tags=tags
            ) as run,
            killed_on_termination(run),
        ):
            yield run
    elif active is not None:  # the caller already opened a run for this stage (`mlflow run` did)
        mlflow.set_tags({**tags, "mlflow.runName": name})
        prepare_experiment(active.info.experiment_id)
        with killed_on_termination(active):
            yield active
    else:
        if not mlflow.environment_variables.MLFLOW_RUN_ID.get():
            mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=name, tags=tags) as run, killed_on_termination(run):
            prepare_experiment(run.info.experiment_id)
            yield run


def prepare_experiment(experiment_id: str) -> None:
    """Tag the experiment as model training (not GenAI) unless it already says what it is (its compare views are
    published per label set once the data is read: publish_view)."""
    client = mlflow.MlflowClient()
    if "mlflow.experimentKind" not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, "mlflow.experimentKind", EXPERIMENT_KIND)


def publish_view(experiment_id: str, classes: Sequence[str]) -> None:
    """Publish the compare view of one label set (skinml/tracking/ui_view.py) on the experiment."""
    client = mlflow.MlflowClient()
    tag, value = view_tag(classes), view_json(classes)
    if client.get_experiment(experiment_id).tags.get(tag) != value:
        client.set_experiment_tag(experiment_id, tag, value)


def file_under_label_set(run_id: str, classes: Sequence[str]) -> str:
    """Tag the run with its classes, which its label set's compare view searches for, and publish that view on its
    experiment; returns the view's link."""
    client = mlflow.MlflowClient()
    client.set_tag(run_id, CLASSES_TAG, ",".join(classes))
    experiment_id = client.get_run(run_id).info.experiment_id
    publish_view(experiment_id, classes)
    return view_url(experiment_id, classes)


def log_params_once(params: dict[str, Any]) -> None:
    """Log params to the active run, leaving alone keys already logged there.

    Under `mlflow run`, MLflow has already logged the entry point's parameters as given (empty meaning 'the
    preset's value') and MLflow forbids changing them. Train runs also log the resolved values as `config.json`.
    """
    run = mlflow.active_run()
    existing = mlflow.get_run(run.info.run_id).data.params if run else {}
    mlflow.log_params({k: v for k, v in params.items() if k not in existing})


def download_run_artifact(run_id: str, artifact_path: str) -> Path:
    """Download one artifact of a run to a temporary folder and return its local path."""
    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact_path, dst_path=tempfile.mkdtemp(prefix="skinml-")
        )
    )


def log_dataset(frame, folder: str | Path, name: str, context: str) -> None:
    """Log `frame` (its `dx` the targets) as a dataset input of the active run, its source the data folder."""
    with warnings.catch_warnings():  # MLflow registers its local source class twice and warns about it
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(frame, source=Path(folder).resolve().as_uri(), targets="dx", name=name)
    mlflow.log_input(dataset, context=context)


def strict_json(data: Any, **options: Any) -> str:
    """`data` as JSON that strict parsers read: a figure that is not a number (NaN, infinite) becomes null; objects
    JSON has no form for are written as text."""

    def clean(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, numbers.Integral):  # numpy's numbers too
            return int(value)
        if isinstance(value, numbers.Real):
            return float(value) if math.isfinite(value) else None
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        return value

    return json.dumps(clean(data), default=str, allow_nan=False, **options)


def dump_json(data: Any, path: str | Path | None) -> None:
    """Write `data` as strict JSON to `path` (no-op when None)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(strict_json(data, indent=2, sort_keys=True))


class Terminated(BaseException):
    """SIGTERM or SIGINT, raised in the main thread: the stage runs it passes through end KILLED (stage_run)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def inside_store_call(frame: FrameType | None) -> bool:
    """Whether the main thread is inside MLflow's client or its database layer."""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(("mlflow.", "sqlalchemy.")):
            return True
        frame = frame.f_back
    return False


_requested: list[int] = []  # the signal that asked this process to stop; kept: every safe point raises it again
_raised_at: list[float] = []  # when Terminated was last raised: the re-sent copies then in flight are not raised again
RESENT_GRACE_SECONDS = 2.0


def _terminate(signum: int) -> None:
    _raised_at[:] = [time.monotonic()]
    raise Terminated(signum)


def raise_if_terminated() -> None:
    """Raise Terminated if a signal asked for a stop. Called at safe points right after MLflow calls (each epoch's
    logging): a signal's handler runs when Python code resumes, which in a training loop is mostly inside that
    logging, where it is not raised. Raised again at each safe point the process still reaches: a Terminated raised
    inside third-party code may be swallowed there (seen under load: training went on for minutes)."""
    if _requested:
        _terminate(_requested[0])


def end_runs_on_signals() -> None:
    """Turn SIGTERM and SIGINT into Terminated. The handler only raises: the runs are closed where the exception
    passes, outside the handler. Not inside an MLflow call, though: raised there, the exception would leave that
    call's database transaction open, its lock held, and ending the run KILLED would wait on it and fail; the
    signal is kept for the next safe point (raise_if_terminated) and sent again 50 ms later, until it lands outside."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if not _requested:
            _requested.append(signum)
        if _raised_at and time.monotonic() - _raised_at[0] < RESENT_GRACE_SECONDS:
            return  # a copy re-sent before the stop began: the runs are being closed, not to be interrupted
        if inside_store_call(frame):
            threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
            return
        _terminate(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@contextlib.contextmanager
def killed_on_termination(run: mlflow.ActiveRun) -> Iterator[mlflow.ActiveRun]:
    """End `run` KILLED, with a note of why, if Terminated passes through."""
    try:
        yield run
    except Terminated as stop:
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run.info.run_id:
            mlflow.set_tag(CLOSED_BECAUSE_TAG, f"its process received {stop}")
            mlflow.end_run("KILLED")
        raise


def close_orphaned_runs() -> list[str]:
    """Mark KILLED the RUNNING runs that a skinml process on this host left behind when it died (kill -9, power
    loss): their `skinml.pid` no longer exists. Returns their run ids."""
    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    runs = client.search_runs(
        experiments,
        f"attributes.status = 'RUNNING' and tags.`skinml.host` = '{socket.gethostname()}'",
        max_results=1000,
    )
    closed = []
    for run in runs:
        pid = int(run.data.tags.get(PID_TAG, "0"))
        if pid and pid != os.getpid() and not process_exists(pid):
            client.set_tag(
                run.info.run_id, CLOSED_BECAUSE_TAG, f"process {pid} on {socket.gethostname()} ended without closing it"
            )
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


def log_epoch(step: int, metrics: dict[str, float]) -> None:
    """Log one epoch's figures to the active run at `step`, then stop there if a signal asked for a stop (the safe
    point raise_if_terminated describes)."""
    mlflow.log_metrics(metrics, step=step)
    raise_if_terminated()  # a SIGTERM that arrived during the logging stops here
