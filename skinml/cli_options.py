"""The options of the `skinml` command that several subcommands share: the data folder and its layout, the recipe
(TrainConfig's fields, stored only when given) and the decisions, and the promotion rule."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from skinml.config import DEFAULT_EXPERIMENT, DEFAULT_MODEL_NAME, LOSSES, PRESETS, TrainConfig


def weights_option(text: str) -> str:
    """imagenet | none | a weights file, made absolute: the logged config is retrained from other folders too."""
    return text if text in ("imagenet", "none") else str(Path(text).resolve())


def block_option(text: str) -> str | None:
    """A MobileNetV2 block to fine-tune from, or None for "none" (the whole backbone frozen)."""
    return None if text == "none" else text


def add_training_options(parser: argparse.ArgumentParser, experiment: str = DEFAULT_EXPERIMENT) -> None:
    """Options shared by `train`, `pipeline`, `schedule` and `sweep`: the data folder, the experiment and the recipe.

    The TrainConfig options are stored under their field's name, and only when given (unset ones come from the
    preset or the champion): `explicit_options` reads them back as they are.
    """
    parser.add_argument("--data-dir", help="labelled image folder in any layout (docs/datasets.md); default: "
                                           "download HAM10000")
    parser.add_argument("--experiment", default=experiment, help=f"MLflow experiment (default {experiment})")
    parser.add_argument("--preset", default="baseline", choices=sorted(PRESETS))
    # argument_default: an option not given stays out of the namespace, so explicit_options sees only given ones
    config = parser.add_argument_group("recipe (default: the preset's; see docs/ablation.md for what was measured)",
                                       argument_default=argparse.SUPPRESS)
    config.add_argument("--epochs", type=int)
    config.add_argument("--batch-size", type=int)
    config.add_argument("--learning-rate", type=float)
    config.add_argument("--dropout", type=float)
    config.add_argument("--image-size", type=int)
    config.add_argument("--weights", type=weights_option, help="imagenet | none | PATH to a weights file")
    config.add_argument("--seed", type=int, help="training seed; also the seed of a split made on the way")
    config.add_argument("--cached-views", type=int, help="augmented views cached per training image")
    config.add_argument("--feature-cache", action=argparse.BooleanOptionalAction,
                        help="train on cached features of the frozen part of the backbone (the default); "
                             "--no-feature-cache: the plain Keras way, backbone in the loop (e.g. on a GPU)")
    config.add_argument("--fine-tune-from", type=block_option,
                        help='fine-tune the backbone from this block on, e.g. "block_4" ("none": keep it all frozen)')
    config.add_argument("--fine-tune-epochs", type=int, help="epochs with the backbone top unfrozen")
    config.add_argument("--fine-tune-learning-rate", type=float)
    config.add_argument("--loss", choices=LOSSES,
                        help="logit_adjusted: balanced-softmax cross-entropy, for balanced accuracy")
    config.add_argument("--temperature-scaling", action=argparse.BooleanOptionalAction,
                        help="fit a temperature on validation (calibrated probabilities)")
    add_data_options(config)
    config.add_argument("--positive-classes", metavar="CLASSES",
                        help='the classes that mean "refer", comma-separated (default: HAM10000\'s mel,bcc,akiec, '
                             "or a binary model's malignant class)")
    config.add_argument("--target-sensitivity", dest="target_sensitivities", type=float, nargs="+", metavar="S",
                        help="sensitivities to choose referral thresholds for on validation (default 0.90 0.95)")
    config.add_argument("--target-balanced-accuracy", type=float, metavar="B",
                        help="balanced accuracy the images the model does not defer must reach (default 0.80)")


def add_data_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The data folder's layout and the label map (`train`, `split`, `evaluate`, ... alike)."""
    from skinml.data.layouts import LAYOUTS

    parser.add_argument("--data-format", choices=["auto", *LAYOUTS],
                        help="the folder's layout (default: recognised from what it holds)")
    parser.add_argument("--label-map", metavar="FILE",
                        help="CSV from,to: merge, rename or drop (empty `to`) classes")


def add_promotion_options(parser: argparse.ArgumentParser) -> None:
    """The registered model and the promotion rule's margin, for the commands that end with a challenger."""
    parser.add_argument("--name", default=DEFAULT_MODEL_NAME, help="registered model name")
    parser.add_argument("--margin", type=float, default=0.0,
                        help="the challenger becomes champion when the lower end of the 95%% interval of its "
                             "balanced-accuracy gain is above this (default 0: a gain beyond the noise)")


def explicit_options(args: argparse.Namespace) -> dict:
    """The TrainConfig fields given on the command line (the others come from the preset or the champion)."""
    from skinml.data.label_map import label_map_of

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"preset"}
    given = {name: value for name, value in vars(args).items() if name in fields}
    if given.get("label_map"):  # a file: its mapping is the recipe's, so that retraining needs no file
        given["label_map"] = label_map_of(given["label_map"])
    return given
