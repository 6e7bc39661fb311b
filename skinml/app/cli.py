"""The `skinml` command: one subcommand per stage (download, audit, split, train, evaluate, pipeline, promote, predict,
schedule, sweep, card, cache), parsed here and run by skinml.app.commands; one line per user error, an internal
error's traceback with -v."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import sys

from skinml.app import commands
from skinml.app.console import set_up_console, user_errors
from skinml.app.options import add_data_options, add_promotion_options, add_training_options
from skinml.app.prefect_server import start_temporary_server, temporary_server_settings
from skinml.core import settings
from skinml.core.recipe import (
    DEFAULT_EXPERIMENT,
    SPLIT_STRATEGIES,
    SPLITS,
    SWEEP_EXPERIMENT,
    SWEEP_METRICS,
    SWEEP_STUDY,
    SWEEP_TRIALS,
)
from skinml.model.tensorflow_import import import_tensorflow_quietly

DESCRIPTION = """The `skinml` command: one subcommand per stage (download, audit, split, train, evaluate, pipeline,
promote, predict, schedule, sweep, card, cache)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skinml", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true")
    # what a command needs, unless its own defaults say otherwise: TensorFlow, MLflow runs, no Prefect flow here
    parser.set_defaults(tensorflow=True, logs_runs=True, runs_flow=False)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="download HAM10000 from Harvard Dataverse (cached)")
    p.add_argument("--dest", help="target folder (default $SKINML_DATA_DIR or ~/.cache/skinml/ham10000)")
    p.add_argument("--server", help="Dataverse base URL (default https://dataverse.harvard.edu)")
    p.set_defaults(func=commands.cmd_download, tensorflow=False, logs_runs=False)

    p = sub.add_parser("split", help="lesion-grouped (or random) train/val/test split manifest")
    p.add_argument("--data-dir")
    p.add_argument("--strategy", default=SPLIT_STRATEGIES[0], choices=SPLIT_STRATEGIES)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--output", default="outputs/manifest.csv", help="manifest CSV to write")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    add_data_options(p)
    p.add_argument(
        "--merge-near-duplicates",
        action="store_true",
        help="join the groups of near-duplicate images (skinml audit); data with no group column always is",
    )
    p.add_argument("--exclude-images", metavar="FILE", help="a CSV with an image_id column: those images are left out")
    p.set_defaults(func=commands.cmd_split, tensorflow=False, logs_runs=False)

    p = sub.add_parser("audit", help="duplicates, inferred groups, label suspects: a report to read before training")
    p.add_argument("--data-dir")
    add_data_options(p)
    p.add_argument("--output", default="outputs/audit", help="folder for the page (audit.html) and the CSVs")
    p.add_argument("--weights", default="imagenet", help="imagenet | PATH: the backbone whose features rank suspects")
    p.add_argument(
        "--label-suspects",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="rank label suspects (needs the backbone's features; --no-label-suspects: duplicates only)",
    )
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    p.set_defaults(func=commands.cmd_audit)

    p = sub.add_parser("train", help="train a classifier, logged to MLflow")
    add_training_options(p)
    p.add_argument("--manifest", help="split manifest CSV (default: make a split)")
    p.add_argument("--output", help="write {run_id, model_uri, metrics} JSON here")
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a logged model on its test split or a labelled folder")
    p.add_argument("--model-uri", required=True)
    p.add_argument("--data-dir", help="a labelled folder in any layout (default: the model's own test split)")
    add_data_options(p)
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    p.add_argument("--output", help="write the metrics JSON here")
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser("pipeline", help="download -> split -> train -> evaluate -> register -> promote (Prefect)")
    add_training_options(p)
    p.add_argument("--split-strategy", default=SPLIT_STRATEGIES[0], choices=SPLIT_STRATEGIES)
    add_promotion_options(p)
    p.add_argument("--output", help="write the pipeline summary JSON here")
    p.set_defaults(func=commands.cmd_pipeline, runs_flow=True)

    p = sub.add_parser("promote", help="evaluate challenger vs champion on the champion's test split; promote")
    add_promotion_options(p)
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    p.set_defaults(func=commands.cmd_promote)

    p = sub.add_parser("predict", help="classify image files, or a whole folder into a table, with a model")
    p.add_argument("images", nargs="*", help="JPEG/PNG files (each unreadable one is named; exit status 2 if any)")
    p.add_argument("--model-uri", default="models:/skinml@champion")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--data-dir", help="score every image of this folder (any layout, or images without labels) into --output"
    )
    p.add_argument("--output", help="with --data-dir: the CSV table to write; a run that stopped resumes from it")
    add_data_options(p)
    p.set_defaults(func=commands.cmd_predict, tensorflow=False, logs_runs=False)

    p = sub.add_parser("schedule", help="serve the retrain flow as deployment retrain/skinml-retrain on a cron")
    p.add_argument("--cron", required=True, help='cron expression, e.g. "0 3 * * 0" (Sundays 03:00)')
    p.add_argument(
        "--timezone", help="IANA time zone of the cron expression, e.g. Europe/Vienna (default: this machine's)"
    )
    add_training_options(p)
    add_promotion_options(p)
    p.set_defaults(func=commands.cmd_schedule)

    p = sub.add_parser("sweep", help="Optuna sweep over dropout and learning rate (Prefect flow)")
    add_training_options(p, experiment=SWEEP_EXPERIMENT)
    add_promotion_options(p)
    p.add_argument(
        "--n-trials", type=int, default=SWEEP_TRIALS, help="trials in the whole study (all workers together)"
    )
    p.add_argument("--timeout", type=float, help="stop this worker after this many seconds")
    p.add_argument("--metric", default=SWEEP_METRICS[0], choices=SWEEP_METRICS)
    p.add_argument(
        "--storage",
        default=settings.optional("SKINML_SWEEP_STORAGE"),
        help="Optuna storage URL shared by workers, e.g. sqlite:///sweeps.db or postgresql://... "
        "(default: $SKINML_SWEEP_STORAGE, which deploy/stack prints)",
    )
    p.add_argument("--study-name", default=SWEEP_STUDY)
    p.add_argument(
        "--retrain",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="retrain, evaluate and register the best configuration after the trials (default); "
        "--no-retrain: only run trials (extra workers)",
    )
    p.set_defaults(func=commands.cmd_sweep, runs_flow=True)

    p = sub.add_parser("card", help="write a model's model card (Markdown, its plots, HTML) from what MLflow holds")
    p.add_argument("model_uri", help="e.g. models:/skinml@champion, models:/skinml/3 or a logged model's URI")
    p.add_argument("--output", default="model_card", help="folder to write it into")
    p.set_defaults(func=commands.cmd_card, logs_runs=False)

    p = sub.add_parser("cache", help="feature cache: info | clear")
    p.add_argument("action", choices=["info", "clear"])
    p.set_defaults(func=commands.cmd_cache, logs_runs=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_up_console(args.verbose)
    # lazy: start-up time
    from skinml.core.processes import mark_owner, stop_orphaned_servers

    log = logging.getLogger("skinml")
    for server, owner in stop_orphaned_servers().items():
        log.warning(
            "stopped Prefect's temporary server (pid %d): skinml process %d that started it had died", server, owner
        )
    mark_owner()  # a temporary server this command starts carries its PID
    server_ready = start_temporary_server() if args.runs_flow else None  # `schedule` serves a deployment instead
    if not args.verbose and args.tensorflow:
        import_tensorflow_quietly()  # `-v` shows its loading lines: imported where first needed
    if server_ready:
        server_ready()
    # What is loaded by now (TensorFlow, MLflow, Prefect: about a million objects) stays for the process's life; every
    # full garbage collection walked it, and the interpreter's last ones at exit (2-3 s per command).
    gc.freeze()
    # lazy: start-up time
    from skinml.tracking.runs import Terminated, close_orphaned_runs, end_runs_on_signals

    end_runs_on_signals()
    try:
        if args.logs_runs:
            for run_id in close_orphaned_runs():
                log.warning("closed run %s as KILLED: its process had died", run_id)
        with temporary_server_settings() if args.runs_flow else contextlib.nullcontext():
            result = args.func(args)
    except Terminated as stop:  # its runs already ended KILLED
        return 128 + stop.signum
    except user_errors() as exc:
        print(f"skinml {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.verbose:
            raise  # skinml's own fault: the traceback, for a bug report
        first_line = (str(exc).splitlines() or [""])[0]
        print(
            f"skinml {args.command}: internal error: {type(exc).__name__}: {first_line} (run with -v for the "
            "traceback)",
            file=sys.stderr,
        )
        return 1
    if result is not None:
        # lazy: start-up time
        from skinml.app.result_text import summary
        from skinml.tracking.runs import strict_json

        text = summary(result, getattr(args, "output", None)) if sys.stdout.isatty() else None
        print(text or strict_json(result, indent=2))  # a person reads a summary; a pipe or a file gets the JSON
    return 0


if __name__ == "__main__":
    sys.exit(main())
