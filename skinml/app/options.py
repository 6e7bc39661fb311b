"""The options of the `skinml` command that several subcommands share: the data folder and its layout, the recipe
(TrainConfig's fields, stored only when given) and the decisions, and the promotion rule."""

from __future__ import annotations

import argparse
import dataclasses

from skinml.core.recipe import DEFAULT_EXPERIMENT, DEFAULT_MODEL_NAME, PRESETS, TrainConfig


def add_recipe_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, config_class: type[TrainConfig] = TrainConfig
) -> None:
    """One option per recipe field that has one, as its `recipe_field` describes it (skinml.core.recipe):
    `--field-name`, stored under the field's name; a bool field is a --name/--no-name flag."""
    for f in dataclasses.fields(config_class):
        meta = f.metadata
        if not meta.get("option", True):
            continue
        kwargs = {"dest": f.name, "help": meta.get("help"), **meta.get("argparse", {})}
        flags = kwargs.pop("flags", ("--" + f.name.replace("_", "-"),))
        kind = f.type if isinstance(f.type, str) else f.type.__name__  # a string under postponed annotations
        if kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = meta.get("parse") or {"int": int, "float": float}.get(kind, str)
        parser.add_argument(*flags, **kwargs)


def add_training_options(parser: argparse.ArgumentParser, experiment: str = DEFAULT_EXPERIMENT) -> None:
    """Options shared by `train`, `pipeline`, `schedule` and `sweep`: the data folder, the experiment and the recipe.

    The TrainConfig options are stored under their field's name, and only when given (unset ones come from the
    preset or the champion): `explicit_options` reads them back as they are.
    """
    parser.add_argument(
        "--data-dir", help="labelled image folder in any layout (docs/datasets.md); default: download HAM10000"
    )
    parser.add_argument("--experiment", default=experiment, help=f"MLflow experiment (default {experiment})")
    parser.add_argument("--preset", default="baseline", choices=sorted(PRESETS))
    # argument_default: an option not given stays out of the namespace, so explicit_options sees only given ones
    config = parser.add_argument_group(
        "recipe (default: the preset's; see docs/ablation.md for what was measured)", argument_default=argparse.SUPPRESS
    )
    add_recipe_options(config)
    add_data_options(config)


def add_data_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The data folder's layout and the label map (`train`, `split`, `evaluate`, ... alike)."""
    # lazy: `skinml --help` starts without pandas
    from skinml.data.layouts import LAYOUTS

    parser.add_argument(
        "--data-format", choices=["auto", *LAYOUTS], help="the folder's layout (default: recognised from what it holds)"
    )
    parser.add_argument("--label-map", metavar="FILE", help="CSV from,to: merge, rename or drop (empty `to`) classes")


def add_promotion_options(parser: argparse.ArgumentParser) -> None:
    """The registered model and the promotion rule's margin, for the commands that end with a challenger."""
    parser.add_argument("--name", default=DEFAULT_MODEL_NAME, help="registered model name")
    parser.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="the challenger becomes champion when the lower end of the 95%% interval of its "
        "balanced-accuracy gain is above this (default 0: a gain beyond the noise)",
    )


def explicit_options(args: argparse.Namespace) -> dict:
    """The TrainConfig fields given on the command line (the others come from the preset or the champion)."""
    # lazy: `skinml --help` starts without pandas
    from skinml.data.label_map import label_map_of
    from skinml.data.tables import image_list_of

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"preset"}
    given = {name: value for name, value in vars(args).items() if name in fields}
    if given.get("label_map"):  # a file: its mapping is the recipe's, so that retraining needs no file
        given["label_map"] = label_map_of(given["label_map"])
    if isinstance(given.get("exclude_images"), str):  # a file, read into the recipe likewise
        given["exclude_images"] = image_list_of(given["exclude_images"])
    return given
