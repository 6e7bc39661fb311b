"""What each `skinml` command does, given its parsed arguments (skinml.app.cli parses them). Each imports what it
runs when it runs (`lazy: start-up time`): `skinml --help` and `skinml cache info` start without TensorFlow, MLflow
or Prefect."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from skinml.app.options import explicit_options
from skinml.core.errors import UserError
from skinml.core.recipe import TrainConfig, recipe
from skinml.core.run_context import RunContext


def training_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe given on the command line, validated (a bad value is refused before any work)."""
    return recipe(args.preset, explicit_options(args))


def data_dir_or_download(data_dir: str | None) -> str:
    # lazy: start-up time
    from skinml.data.download import download_ham10000

    return data_dir if data_dir else str(download_ham10000())


def cmd_download(args: argparse.Namespace) -> dict:
    # lazy: start-up time
    from skinml.data.download import download_ham10000

    return {"data_dir": str(download_ham10000(args.dest, args.server))}


def data_options(args: argparse.Namespace) -> dict:
    """The folder's layout and label map as a data command was given them (`data_format`, `label_map`)."""
    # lazy: start-up time
    from skinml.data.label_map import label_map_of

    return {"data_format": args.data_format or "auto", "label_map": label_map_of(args.label_map)}


def cmd_split(args: argparse.Namespace) -> dict:
    # lazy: start-up time
    from skinml.data.tables import image_list_of
    from skinml.stages.split import run_split

    return run_split(
        data_dir_or_download(args.data_dir),
        args.output,
        args.strategy,
        seed=args.seed,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        context=RunContext(args.experiment),
        **data_options(args),
        merge_near_duplicates=args.merge_near_duplicates,
        exclude_images=image_list_of(args.exclude_images) if args.exclude_images else (),
    )


def cmd_audit(args: argparse.Namespace) -> dict:
    # lazy: start-up time
    from skinml.stages.audit import run_audit

    return run_audit(
        data_dir_or_download(args.data_dir),
        output=args.output,
        weights=args.weights,
        label_suspects=args.label_suspects,
        context=RunContext(args.experiment),
        **data_options(args),
    )


def cmd_train(args: argparse.Namespace) -> dict:
    # lazy: start-up time
    from skinml.stages.train import train

    return train(
        training_config(args),
        data_dir_or_download(args.data_dir),
        args.manifest,
        context=RunContext(args.experiment),
        output=args.output,
    )


def cmd_evaluate(args: argparse.Namespace) -> dict:
    # lazy: start-up time
    from skinml.stages.evaluate import evaluate

    return evaluate(
        args.model_uri,
        args.data_dir,
        args.split,
        context=RunContext(args.experiment),
        output=args.output,
        **data_options(args),
    )


def cmd_pipeline(args: argparse.Namespace) -> dict:
    # lazy: start-up time
    from flows.pipeline import pipeline_flow

    training_config(args)  # a bad recipe is refused here, before any flow or MLflow run starts
    return pipeline_flow(
        data_dir=args.data_dir,
        preset_name=args.preset,
        overrides=explicit_options(args),
        split_strategy=args.split_strategy,
        experiment=args.experiment,
        output=args.output,
        model_name=args.name,
        promotion_margin=args.margin,
    )


def cmd_promote(args: argparse.Namespace) -> dict:
    # lazy: start-up time
    from skinml.registry.promotion import promote

    return promote(args.name, args.margin, context=RunContext(args.experiment))


def cmd_predict(args: argparse.Namespace) -> dict | None:
    """Print the answer for every readable file, or score a folder into a table (`--data-dir`, `--output`); name each
    file that could not be scored on stderr, the exit status then 2."""
    # lazy: start-up time
    import pandas as pd

    from skinml.app.predict import predict_files
    from skinml.serving.request_form import InvalidImageError

    if args.data_dir or args.output:
        return predict_folder(args)
    if not args.images:
        raise UserError("name image files, or a folder with --data-dir and --output")
    if args.data_format or args.label_map:
        raise UserError("--data-format and --label-map go with --data-dir")
    table, problems = predict_files(args.model_uri, args.images)
    if len(table) and args.json:
        print(
            json.dumps(
                {"model_uri": args.model_uri, "predictions": table.to_dict(orient="records")}, indent=2, default=str
            )
        )
    elif len(table):
        with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 200):
            print(table.to_string(index=False))
    for problem in problems[:-1]:
        print(f"skinml predict: error: {problem}", file=sys.stderr)
    if problems:  # main prints the last one as it prints every user error, and returns 2
        raise InvalidImageError(problems[-1])


def predict_folder(args: argparse.Namespace) -> dict:
    """`skinml predict --data-dir D --output scores.csv`: the table written (skinml.app.score_folder)."""
    # lazy: start-up time
    from skinml.app.score_folder import score_folder
    from skinml.serving.request_form import InvalidImageError

    if not (args.data_dir and args.output) or args.images or args.json:
        raise UserError("--data-dir and --output go together, without image files or --json")
    scores = score_folder(args.model_uri, args.data_dir, args.output, **data_options(args))
    if scores.problems:  # each is on stderr already; main prints this one as it prints every user error
        raise InvalidImageError(
            f"{len(scores.problems)} of {scores.images} images could not be scored (the error column of "
            f"{scores.output} says why)"
        )
    return {"output": scores.output, "images": scores.images, "already_there": scores.already, "scored": scores.scored}


def cmd_schedule(args: argparse.Namespace) -> None:
    # lazy: start-up time
    from flows.retrain import serve_retraining

    training_config(args)
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None  # the worker may start elsewhere
    serve_retraining(
        args.cron,
        data_dir,
        model_name=args.name,
        overrides=explicit_options(args),
        experiment=args.experiment,
        promotion_margin=args.margin,
        preset_name=args.preset,
        timezone=args.timezone,
    )


def cmd_sweep(args: argparse.Namespace) -> dict:
    # lazy: start-up time
    from flows.sweep import sweep_flow

    training_config(args)
    return sweep_flow(
        data_dir=args.data_dir,
        preset_name=args.preset,
        overrides=explicit_options(args),
        n_trials=args.n_trials,
        metric=args.metric,
        study_name=args.study_name,
        storage=args.storage,
        timeout=args.timeout,
        retrain_best=args.retrain,
        model_name=args.name,
        experiment=args.experiment,
        promotion_margin=args.margin,
    )


def cmd_card(args: argparse.Namespace) -> dict:
    # lazy: start-up time
    from skinml.registry.model_card import write_card
    from skinml.tracking.logged_model import LoggedModel

    return write_card(LoggedModel.resolve(args.model_uri), args.output)


def cmd_cache(args: argparse.Namespace) -> dict:
    # lazy: start-up time
    from skinml.features.cache import FeatureCache

    cache = FeatureCache.default()
    return cache.info() if args.action == "info" else {"path": str(cache.root), "removed_entries": cache.clear()}
