"""The `skinml` command and the MLproject entry points, run as a user would."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from PIL import Image

from skinml.app.cli import main
from skinml.app.console import PrefectUserErrors, no_traceback_for_user_errors
from skinml.app.mlproject import skinml_arguments
from skinml.core.errors import DataError, OptionError
from skinml.core.recipe import preset as preset_config
from skinml.data.layouts import DESCRIPTIONS

from ..conftest import IMAGE_SIZE

REPO = Path(__file__).resolve().parents[2]


def test_train_then_evaluate_from_the_command_line(synthetic_dir, test_weights, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--data-dir",
                str(synthetic_dir),
                "--weights",
                test_weights,
                "--image-size",
                str(IMAGE_SIZE),
                "--epochs",
                "2",
                "--cached-views",
                "1",
                "--output",
                "train.json",
            ]
        )
        == 0
    )
    trained = json.loads(Path("train.json").read_text())
    assert {"run_id", "model_uri", "metrics"} <= set(trained)
    assert main(["evaluate", "--model-uri", trained["model_uri"], "--output", "eval.json"]) == 0
    assert {"accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "per_class"} <= set(
        json.loads(Path("eval.json").read_text())
    )
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] > 0


def test_split_command_writes_manifest(synthetic_dir, capsys):
    assert main(["split", "--data-dir", str(synthetic_dir), "--output", "m.csv", "--strategy", "random"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert Path("m.csv").exists() and summary["lesions_crossing_splits"] > 0


def test_a_split_by_image_says_so_and_counts_no_lesions_it_cannot_see(tmp_path, capsys):
    from skinml.data.synthetic import make_synthetic_set

    data = make_synthetic_set(tmp_path / "tree", "folder", ("bkl", "mel", "nv"), n_per_class=10)
    assert main(["split", "--data-dir", str(data), "--output", str(tmp_path / "m.csv")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["strategy"] == "grouped, the data names no group: 0 groups of near-duplicates"
    assert summary["lesions_crossing_splits"] == "unknown"
    tags = mlflow.get_run(summary["run_id"]).data.tags
    assert tags["skinml.split_lesions_crossing_splits"] == "unknown"


def test_bad_data_gives_exit_code_2_and_names_the_problem(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    assert main(["train", "--data-dir", str(tmp_path / "nothing"), "--weights", "none"]) == 2
    assert "no layout matches what the folder holds (nothing)" in capsys.readouterr().err


def test_missing_weights_file_is_a_clear_error(synthetic_dir, capsys):
    assert main(["train", "--data-dir", str(synthetic_dir), "--weights", "/no/such/weights.h5"]) == 2
    assert "weights file /no/such/weights.h5 does not exist" in capsys.readouterr().err


def test_mlflow_parameters_become_skinml_options():
    """Declared parameters arrive as the MLproject command gives them (empty = not set); MLflow appends undeclared
    ones as `--snake_name value`, true/false for a flag."""
    from skinml.app.cli import build_parser
    from skinml.app.commands import training_config

    argv = [
        "train",
        "--data-dir",
        "",
        "--preset",
        "best",
        "--fine_tune_epochs",
        "16",
        "--feature_cache",
        "false",
        "--temperature_scaling",
        "FALSE",
        "--loss",
        "crossentropy",
        "--epochs",
        "",
    ]
    assert skinml_arguments(argv) == [
        "train",
        "--preset",
        "best",
        "--fine-tune-epochs",
        "16",
        "--no-feature-cache",
        "--no-temperature-scaling",
        "--loss",
        "crossentropy",
    ]
    config = training_config(build_parser().parse_args(skinml_arguments(argv)))
    assert config == preset_config("best").replace(
        fine_tune_epochs=16, feature_cache=False, loss="crossentropy", temperature_scaling=False
    )
    on = training_config(build_parser().parse_args(skinml_arguments(["train", "--feature_cache", "true"])))
    assert on.feature_cache is True
    sweep = ["sweep", "--n-trials", "30", "--retrain", "false"]  # `mlflow run . -e sweep -P retrain=false`
    assert build_parser().parse_args(skinml_arguments(sweep)).retrain is False
    assert build_parser().parse_args(["sweep"]).retrain is True


def test_train_help_lists_the_recipe_and_no_retired_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    options = re.findall(r"^  (-[-\w]+)", capsys.readouterr().out, flags=re.MULTILINE)
    # the recipe, the data (--data-dir, --data-format, --label-map, --merge-near-duplicates, --exclude-images), the
    # decisions
    assert len(options) <= 29, options  # with -h
    assert "--loss" in options and "--fine-tune-from" in options and "--temperature-scaling" in options
    for retired in (
        "--class-weight",
        "--sampling",
        "--label-smoothing",
        "--mixup",
        "--colour-jitter",
        "--colour-constancy",
        "--prior-adjustment",
    ):
        assert retired not in options
    with pytest.raises(SystemExit):
        main(["train", "--mixup", "0.2"])
    assert "unrecognized arguments: --mixup" in capsys.readouterr().err


def test_every_mlproject_parameter_reaches_a_skinml_option(capsys):
    """Each entry point passes each of its parameters as an option that its `skinml` command knows."""
    from skinml.app.cli import build_parser

    for name, entry in yaml.safe_load((REPO / "MLproject").read_text())["entry_points"].items():
        words = entry["command"].split()
        assert words[:3] == ["python", "-m", "skinml.app.mlproject"], name
        with pytest.raises(SystemExit):
            build_parser().parse_args([words[3], "--help"])
        known = set(re.findall(r"--[a-z][a-z-]*", capsys.readouterr().out))  # the options its help lists
        passed = dict(re.findall(r"(--[a-z-]+) \{(\w+)\}", entry["command"]))
        assert sorted(passed.values()) == sorted(entry["parameters"]), f"{name}: a parameter is not passed on"
        assert set(passed) <= set(known), f"{name}: unknown options {set(passed) - set(known)}"


def run_mlflow_run(experiment: str, *arguments: str) -> subprocess.CompletedProcess:
    """`mlflow run` of this repository in a fresh process, as a user types it."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(REPO),
        "--env-manager",
        "local",
        "--experiment-name",
        experiment,
        *arguments,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def mlflow_run(experiment: str, *arguments: str) -> str:
    """`mlflow run` as run_mlflow_run; fails the test if it fails, else returns what it logged."""
    done = run_mlflow_run(experiment, *arguments)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def test_mlflow_run_sweep_entry_point_nests_everything_under_its_run(synthetic_dir, test_weights):
    """`mlflow run . -e sweep` in an experiment of the user's choosing: the project's run is the sweep's parent."""
    mlflow_run(
        "my-sweeps",
        "-e",
        "sweep",
        "-P",
        f"data_dir={synthetic_dir}",
        "-P",
        f"weights={test_weights}",
        "-P",
        "n_trials=2",
        "-P",
        "epochs=2",
        "-P",
        f"image_size={IMAGE_SIZE}",
        "-P",
        "cached_views=1",
        "-P",
        "margin=0.5",
    )
    runs = mlflow.search_runs(experiment_names=["my-sweeps"])
    assert set(runs["status"]) == {"FINISHED"}
    parent = runs[runs["tags.skinml.stage"] == "sweep"]
    assert len(parent) == 1 and parent.iloc[0]["params.n_trials"] == "2"
    children = runs[runs["tags.mlflow.parentRunId"] == parent.iloc[0]["run_id"]]
    assert sorted(children["tags.skinml.stage"]) == ["evaluate", "promote", "train", "trial", "trial"]
    promotion = children[children["tags.skinml.stage"] == "promote"].iloc[0]["run_id"]
    assert mlflow.artifacts.load_dict(f"runs:/{promotion}/promotion.json")["margin"] == 0.5  # the margin honoured
    for default in ("skinml", "skinml-sweeps"):  # every run of the sweep went to the experiment it was given
        experiment = mlflow.get_experiment_by_name(default)
        assert experiment is None or mlflow.search_runs([experiment.experiment_id]).empty


def test_a_relative_weights_path_is_kept_absolute(tmp_path, monkeypatch):
    from skinml.app.cli import build_parser
    from skinml.app.commands import training_config

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["train", "--weights", "weights/no_top.h5"])
    assert training_config(args).weights == str(tmp_path / "weights" / "no_top.h5")
    assert training_config(build_parser().parse_args(["train", "--weights", "imagenet"])).weights == "imagenet"


def test_fine_tune_from_none_gives_the_frozen_backbone_of_the_baseline():
    from skinml.app.cli import build_parser
    from skinml.app.commands import training_config

    config = training_config(build_parser().parse_args(["train", "--preset", "best", "--fine-tune-from", "none"]))
    assert config.fine_tune_from is None and config.params()["fine_tune_from"] == "none"
    assert config.preset_overrides()["fine_tune_from"] is None
    assert (
        training_config(build_parser().parse_args(["train", "--fine-tune-from", "block_4"])).fine_tune_from == "block_4"
    )


def test_options_not_given_leave_the_preset_alone():
    from skinml.app.cli import build_parser
    from skinml.app.commands import explicit_options, training_config

    args = build_parser().parse_args(["sweep", "--preset", "best", "--seed", "7"])
    assert explicit_options(args) == {"seed": 7}
    assert training_config(args) == preset_config("best").replace(seed=7)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--epochs", "0", "epochs must be >= 1, got 0"),
        ("--fine-tune-epochs", "-1", "fine_tune_epochs must be >= 0, got -1"),
        ("--batch-size", "0", "batch_size must be >= 1, got 0"),
        ("--learning-rate", "0", "learning_rate must be > 0, got 0.0"),
        ("--dropout", "1", "dropout must be in [0, 1), got 1.0"),
    ],
)
def test_a_training_option_out_of_range_is_refused_before_any_work(tmp_path, option, value, message, capsys):
    # before the data folder is read: this one does not exist
    assert main(["train", "--data-dir", str(tmp_path / "absent"), "--weights", "none", option, value]) == 2
    assert message in capsys.readouterr().err


def test_an_error_reaches_the_terminal_without_start_up_noise(tmp_path):
    """TensorFlow's loading lines (absl, oneDNN, CUDA) and MLflow's notes stay out of the terminal: a user with a
    bad data folder sees the error and nothing else."""
    (tmp_path / "nothing").mkdir()
    env = {
        key: value for key, value in os.environ.items() if key not in ("TF_CPP_MIN_LOG_LEVEL", "MLFLOW_LOGGING_LEVEL")
    }
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path}/mlflow.db"  # a new store: MLflow would say it creates tables
    folder = tmp_path / "nothing"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "skinml"), "train", "--data-dir", str(folder)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == no_layout_report("train", folder)


def test_prefect_logs_a_failed_stage_without_traceback_only_for_user_errors():
    for error, keeps_traceback in (
        (OptionError("no such study"), False),
        (RuntimeError("a bug of ours"), True),
        (ValueError("a bug of ours too"), True),
    ):
        try:
            raise error
        except Exception:
            record = logging.LogRecord(
                "prefect.flow_runs", logging.ERROR, __file__, 1, "Encountered exception", None, sys.exc_info()
            )
        assert no_traceback_for_user_errors(record)  # the line itself is kept
        assert (record.exc_info is not None) == keeps_traceback


def test_prefect_lines_about_a_run_failed_by_a_user_error_are_left_out():
    """The exception line and the 'Finished in state Failed' line of each task or flow run that failed with a user
    error; a bug's lines, other runs' lines and other loggers' lines stay."""

    def record(logger: str, message: str, run_id: str, error: Exception | None = None) -> logging.LogRecord:
        exc_info = None
        if error is not None:
            try:
                raise error
            except Exception:
                exc_info = sys.exc_info()
        entry = logging.LogRecord(logger, logging.ERROR, __file__, 1, message, None, exc_info)
        setattr(entry, "task_run_id" if logger.endswith("task_runs") else "flow_run_id", run_id)
        return entry

    quiet = PrefectUserErrors()
    state = "Finished in state Failed('Task run encountered an exception DataError: bad')"
    assert not quiet.filter(record("prefect.task_runs", "Task run failed with exception", "t1", DataError("bad")))
    assert not quiet.filter(record("prefect.task_runs", state, "t1"))
    assert not quiet.filter(record("prefect.flow_runs", "Encountered exception", "f1", DataError("bad")))
    assert not quiet.filter(record("prefect.flow_runs", "Finished in state Failed('Flow run ...')", "f1"))
    assert quiet.filter(record("prefect.task_runs", state, "t2"))  # a run not seen failing with a user error
    assert quiet.filter(record("prefect.flow_runs", "Finished in state Completed()", "f1"))
    assert quiet.filter(record("prefect.task_runs", "Task run failed with exception", "t3", RuntimeError("bug")))
    assert quiet.filter(record("prefect.task_runs", state, "t3"))
    assert quiet.filter(record("skinml", "a warning with a user error", "t1", DataError("bad")))


def test_an_internal_error_is_one_line_and_shows_its_traceback_with_verbose(
    monkeypatch, capsys, synthetic_dir, tmp_path
):
    def bug(*args, **kwargs):
        raise KeyError("a bug of ours")

    monkeypatch.setattr("skinml.stages.split.make_split", bug)
    command = ["split", "--data-dir", str(synthetic_dir), "--output", str(tmp_path / "manifest.csv")]
    assert main(command) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "skinml split: internal error: KeyError: 'a bug of ours' (run with -v for the traceback)"
    )
    with pytest.raises(KeyError, match="a bug of ours"):  # the traceback, as Python prints it
        main(["-v", *command])
    assert mlflow.search_runs(search_all_experiments=True).empty  # computed before its run: no run left behind


PREFECT_PROGRESS = re.compile(r"^\S+ \S+ INFO prefect(\.\w+)*( \[[^\]]*\])?: |^See https://www\.prefect\.io/")
MLFLOW_INFO = re.compile(r"^\d{4}/\d\d/\d\d \S+ INFO mlflow[.\w]*: ")


def no_layout_report(command: str, folder: Path) -> list[str]:
    """What skinml says about an empty data folder: one line, the layouts it tried."""
    tried = "; ".join(f"{name} ({what})" for name, what in DESCRIPTIONS.items())
    return [f"skinml {command}: error: {folder}: no layout matches what the folder holds (nothing); tried {tried}"]


def test_a_user_error_in_a_prefect_flow_reaches_the_terminal_once(tmp_path):
    """`skinml pipeline` with an empty data folder: Prefect's progress lines, then skinml's report and exit
    status 2; not Prefect's task and flow error and state lines repeating it (`-v` shows those)."""
    folder = tmp_path / "nothing"
    folder.mkdir()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "skinml"), "pipeline", "--data-dir", str(folder)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert [line for line in done.stderr.splitlines() if not PREFECT_PROGRESS.match(line)] == no_layout_report(
        "pipeline", folder
    ), done.stderr
    assert "Failed(" not in done.stderr and "Traceback" not in done.stderr


def test_mlflow_run_reports_a_user_error_once(tmp_path):
    """The same through `mlflow run . -P data_dir=...`: skinml's report once, then MLflow's own line. MLflow 3.17's
    `mlflow run` exits 1 for any failed command (it keeps only whether the status was 0), so not 2."""
    folder = tmp_path / "nothing"
    folder.mkdir()
    done = run_mlflow_run("skinml", "-P", f"data_dir={folder}")
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if not (PREFECT_PROGRESS.match(line) or MLFLOW_INFO.match(line))]
    assert lines[:-1] == no_layout_report("pipeline", folder), done.stderr
    assert re.fullmatch(r"\S+ \S+ ERROR mlflow.cli: === Run \(ID '\w+'\) failed ===", lines[-1]), done.stderr
    assert "Failed(" not in done.stderr and "Traceback" not in done.stderr


def test_a_model_that_is_not_registered_is_one_line(tmp_path, capsys):
    image = tmp_path / "lesion.png"
    Image.new("RGB", (20, 15), (205, 150, 125)).save(image)
    assert main(["predict", str(image), "--model-uri", "models:/no-such-model@champion"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("skinml predict: error: ") and "no-such-model" in error[0]


def test_results_are_strict_json_with_null_for_a_missing_figure(tmp_path):
    from skinml.tracking.runs import dump_json, strict_json

    result = {"balanced_accuracy": float("nan"), "ci95": [float("inf"), 0.5], "n": 3, "path": tmp_path}
    text = strict_json(result)
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in strict JSON")) == {
        "balanced_accuracy": None,
        "ci95": [None, 0.5],
        "n": 3,
        "path": str(tmp_path),
    }
    dump_json(result, tmp_path / "out.json")
    assert "NaN" not in (tmp_path / "out.json").read_text()


def test_a_person_reads_the_headline_figures_and_where_to_look():
    from skinml.app.result_text import summary

    tested = {
        "eval_split": "test",
        "n_images": 1431,
        "balanced_accuracy": 0.404,
        "macro_auc": 0.906,
        "accuracy": 0.737,
        "macro_f1": 0.465,
        "ece": float("nan"),
        "ci95": {"balanced_accuracy": [0.347, 0.466], "macro_auc": [None, None]},
        "per_class": {"df": {"recall": 0.24}, "mel": {"recall": 0.16}},
    }
    result = {
        "train": {"model_uri": "models:/m-1", "run_id": "r1", "metrics": {"val_balanced_accuracy": 0.41}},
        "evaluate": tested,
        "registry": {"name": "skinml", "version": "2", "aliases": ["challenger"]},
        "promotion": {"reason": "v2 did not become champion: gain +0.010"},
        "mlflow_ui": "http://ui/#/x",
    }
    lines = summary(result, "out.json").splitlines()
    assert lines == [
        "trained models:/m-1 (run r1): validation balanced accuracy 0.410",
        "test (1431 images): balanced accuracy 0.404 [0.347, 0.466], macro AUC 0.906, accuracy 0.737, macro F1 0.465, "
        "ECE n/a",
        "recall df 0.240, mel 0.160",
        "registered skinml v2 (challenger)",
        "promotion: v2 did not become champion: gain +0.010",
        "MLflow UI (run `mlflow ui` in this folder): http://ui/#/x",
        "the whole result: out.json",
    ]
    assert summary({"entries": 3, "path": "/c"}) is None  # no figures: the JSON is printed
