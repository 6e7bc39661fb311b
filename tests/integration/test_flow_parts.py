"""The flows' parts on Prefect's local API: run names (flows.names), skinml's lines in Prefect's logs
(flows.run_logs), stopping on a signal (flows.stopping), the stages as tasks (flows.tasks), and the sweep flow
(flows.sweep) ending in the challenger's stages (flows.challenger)."""

import logging
import os
import signal
import threading
import time
from datetime import date
from pathlib import Path

import mlflow
import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, LogFilter, LogFilterFlowRunId, LogFilterTaskRunId
from prefect.exceptions import TerminationSignal
from prefect.logging.handlers import APILogHandler
from prefect.runtime import flow_run, task_run

from flows.names import pipeline_run_name, read_run_name, retrain_run_name, sweep_run_name, train_run_name
from flows.run_logs import SkinmlRunLogs, send_skinml_logs_to_prefect
from flows.stopping import FlowTerminated, stops_like_skinml
from flows.sweep import sweep_flow
from flows.tasks import download, split
from skinml.core.names import CLOSED_BECAUSE_TAG
from skinml.core.recipe import SWEEP_EXPERIMENT, TrainConfig, recipe
from skinml.core.run_context import RunContext
from skinml.tracking import runs
from skinml.tracking.runs import Terminated, stage_run

from ..conftest import IMAGE_SIZE

TINY = {"image_size": IMAGE_SIZE, "epochs": 2, "cached_views": 1, "seed": 3}


@flow(flow_run_name=pipeline_run_name)
def named_like_a_pipeline(preset_name: str = "baseline", overrides: dict | None = None) -> str:
    return flow_run.name


@flow(flow_run_name=sweep_run_name)
def named_like_a_sweep(
    study_name: str, n_trials: int, preset_name: str = "baseline", overrides: dict | None = None
) -> str:
    return flow_run.name


@flow(flow_run_name=retrain_run_name)
def named_like_a_retrain(model_name: str = "skinml") -> str:
    return flow_run.name


@task(task_run_name=read_run_name)
def named_like_a_read(data_dir: str | None) -> str:
    return task_run.name


@task(task_run_name=train_run_name)
def named_like_a_train(config: TrainConfig) -> str:
    return task_run.name


@flow
def tasks_named() -> list[str]:
    return [
        named_like_a_read("/data/ham10000"),
        named_like_a_read(None),
        named_like_a_train(recipe("best", {"seed": 1})),
    ]


def test_flow_and_task_runs_are_named_after_their_parameters():
    assert named_like_a_pipeline("baseline", {"epochs": 3, "image_size": 32}) == "pipeline baseline size=32 epochs=3"
    assert named_like_a_pipeline("best", {"epochs": "many"}) == "pipeline best"  # a bad recipe: its preset
    assert named_like_a_sweep("s1", 5, "baseline", {"dropout": 0.3}) == "sweep s1 5 trials baseline dropout=0.3"
    assert named_like_a_retrain("lesions") == f"retrain lesions {date.today()}"
    assert tasks_named() == ["read ham10000", "download HAM10000", "train best seed=1"]


@flow
def logs_a_skinml_line(marker: str) -> tuple[str, bool]:
    logging.getLogger("skinml.flow_parts").info("a skinml line %s", marker)
    record = logging.LogRecord("skinml.x", logging.INFO, __file__, 1, "inside", None, None)
    return str(flow_run.id), SkinmlRunLogs().filter(record)


def test_skinml_lines_logged_in_a_flow_run_reach_its_prefect_logs():
    marker = f"marker-{time.time_ns()}"
    flow_run_id, passed_inside = logs_a_skinml_line(marker)
    assert passed_inside
    outside = logging.LogRecord("skinml.x", logging.INFO, __file__, 1, "outside", None, None)
    assert not SkinmlRunLogs().filter(outside)  # a `skinml train` is no flow: nothing sent
    APILogHandler().flush()
    with get_client(sync_client=True) as prefect:
        logs = prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    assert [(log.name, log.message) for log in logs if marker in log.message] == [
        ("skinml.flow_parts", f"a skinml line {marker}")
    ]


def test_the_handler_is_attached_once_and_the_level_set_only_when_unset(monkeypatch):
    logger = logging.getLogger("skinml")
    monkeypatch.setattr(logger, "handlers", [h for h in logger.handlers if not isinstance(h, SkinmlRunLogs)])
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    send_skinml_logs_to_prefect()
    send_skinml_logs_to_prefect()
    assert [type(h) for h in logger.handlers].count(SkinmlRunLogs) == 1 and logger.level == logging.INFO
    logger.level = logging.WARNING  # a level a command set stays
    send_skinml_logs_to_prefect()
    assert logger.level == logging.WARNING


@pytest.fixture
def no_stop_requested():
    """The stop a signal requested is kept for the process's next safe point: forgotten after the test."""
    yield
    runs._requested.clear()
    runs._raised_at.clear()


def test_a_signal_inside_stops_like_skinml_ends_the_runs_killed_as_prefects_termination(no_stop_requested):
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    with pytest.raises(FlowTerminated) as caught:
        with stops_like_skinml():
            assert signal.getsignal(signal.SIGTERM) is not previous[signal.SIGTERM]
            with stage_run("train") as run:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)  # the handler raises here
    stop = caught.value
    assert isinstance(stop, TerminationSignal) and isinstance(stop, Terminated)
    assert stop.signal == stop.signum == signal.SIGTERM
    assert {signum: signal.getsignal(signum) for signum in previous} == previous  # the handlers put back
    killed = mlflow.get_run(run.info.run_id)
    assert killed.info.status == "KILLED"
    assert killed.data.tags[CLOSED_BECAUSE_TAG] == "its process received SIGTERM"


def test_other_errors_pass_unchanged_and_the_handlers_come_back():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyError), stops_like_skinml():
        raise KeyError("x")
    assert signal.getsignal(signal.SIGTERM) is previous


def test_outside_the_main_thread_nothing_changes():
    seen = []

    def body():
        before = signal.getsignal(signal.SIGTERM)
        with stops_like_skinml():  # signal.signal would raise ValueError here
            seen.append(signal.getsignal(signal.SIGTERM) is before)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [True]


@flow
def swaps_handlers() -> tuple[str, str, bool]:
    before = signal.getsignal(signal.SIGTERM)
    with stops_like_skinml():
        inside = signal.getsignal(signal.SIGTERM)
    return getattr(inside, "__qualname__", str(inside)), str(before), signal.getsignal(signal.SIGTERM) is before


def test_in_a_flow_run_skinml_handles_the_signals_then_prefect_again():
    inside, _, restored = swaps_handlers()
    assert inside == "end_runs_on_signals.<locals>.handler" and restored


@flow
def reads_and_splits(data_dir: str, manifest: str) -> tuple[str, str, dict]:
    config = recipe("baseline", {"seed": 7})
    folder = download(data_dir)
    return str(flow_run.id), folder, split(folder, manifest, "grouped", config, RunContext("flow-parts"))


def task_run_names(flow_run_id) -> set[str]:
    with get_client(sync_client=True) as prefect:
        return {run.name for run in prefect.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}))}


def test_the_read_and_split_tasks_run_their_stages(synthetic_dir, tmp_path):
    flow_run_id, folder, summary = reads_and_splits(str(synthetic_dir), str(tmp_path / "manifest.csv"))
    assert folder == str(synthetic_dir)  # a folder given: nothing downloaded
    assert task_run_names(flow_run_id) == {f"read {synthetic_dir.name}", "split grouped seed=7"}
    assert Path(summary["manifest"]).is_file() and summary["strategy"] == "grouped"
    assert summary["n_train"] + summary["n_val"] + summary["n_test"] == 84
    split_run = mlflow.get_run(summary["run_id"])
    assert split_run.data.params["seed"] == "7" and split_run.data.tags["skinml.stage"] == "split"
    assert mlflow.get_experiment(split_run.info.experiment_id).name == "flow-parts"
    assert download.fn(str(synthetic_dir)) == str(synthetic_dir)


def test_the_sweep_flow_takes_its_best_recipe_through_the_challengers_stages(synthetic_dir, test_weights, subtests):
    overrides = {**TINY, "weights": test_weights}
    result = sweep_flow(str(synthetic_dir), "baseline", overrides, n_trials=2, study_name="parts")
    base = recipe("baseline", overrides)
    best = base.replace(**result["best_params"])
    parent = mlflow.get_run(result["parent_run_id"])
    stages = mlflow.search_runs(
        experiment_names=[SWEEP_EXPERIMENT], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )

    with subtests.test("MLflow: the trials and the challenger's stages under the sweep's parent run"):
        assert parent.data.tags["skinml.stage"] == "sweep" and parent.data.params["study_name"] == "parts"
        assert sorted(stages["tags.skinml.stage"]) == ["evaluate", "promote", "train", "trial", "trial"]
        assert set(stages["status"]) == {"FINISHED"}
        assert result["n_complete"] == 2 and result["study_name"] == "parts"
        trained = mlflow.get_run(result["best_train_run_id"]).data.params
        assert float(trained["dropout"]) == pytest.approx(result["best_params"]["dropout"])
        assert float(trained["learning_rate"]) == pytest.approx(result["best_params"]["learning_rate"])
        assert trained["epochs"] == "2" and trained["seed"] == "3"
        tested = mlflow.get_run(result["best_evaluate_run_id"])
        assert tested.data.tags["skinml.model_uri"] == result["best_model_uri"]
        assert tested.data.metrics["test_balanced_accuracy"] == pytest.approx(result["best_test_balanced_accuracy"])
        assert result["best_test_ci95"]["balanced_accuracy"][0] <= result["best_test_balanced_accuracy"]
        assert result["registry"] == {"name": "skinml", "version": "1", "aliases": ["challenger", "champion"]}
        assert result["promotion"]["promoted"] is False  # the first version is the champion already
        assert f"/experiments/{parent.info.experiment_id}/" in result["mlflow_ui"]

    with subtests.test("Prefect: the flow run and each stage's task run are named after the recipe"):
        with get_client(sync_client=True) as prefect:
            runs_of_flow = prefect.read_flow_runs(
                flow_run_filter=FlowRunFilter(name={"any_": [f"sweep parts 2 trials {base.label()}"]})
            )
        assert len(runs_of_flow) == 1
        flow_run_id = runs_of_flow[0].id
        assert task_run_names(flow_run_id) == {
            f"read {synthetic_dir.name}",
            "trials parts",
            f"train {best.label()}",
            "evaluate",
            "register skinml",
            "promote skinml",
        }

    with subtests.test("Prefect: skinml's lines in the train task's logs, the flow's own lines in the flow's"):
        APILogHandler().flush()  # send what is queued
        with get_client(sync_client=True) as prefect:
            train_task = next(
                run
                for run in prefect.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}))
                if run.name.startswith("train ")
            )
            task_logs = prefect.read_logs(log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[train_task.id])))
            flow_logs = prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        epochs = [
            log.message.split(":")[0]
            for log in task_logs
            if log.name.startswith("skinml") and log.message.startswith("epoch ")
        ]
        assert epochs == ["epoch 1", "epoch 2"]
        messages = [log.message for log in flow_logs]
        assert any(m.startswith(f"best of parts: val_balanced_accuracy = {result['best_value']:.4f}") for m in messages)
        assert f"trained: {result['best_model_uri']}" in messages
        assert any(m.startswith("registered skinml v1 (challenger, champion); promotion: ") for m in messages)
