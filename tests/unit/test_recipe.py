"""A recipe setting is one edit: a field with its `recipe_field` gets its option, MLflow parameter and run-name part."""

import argparse
import dataclasses

import pytest

from skinml.app.options import add_recipe_options
from skinml.core.recipe import TrainConfig, recipe, recipe_field


def test_a_new_recipe_field_brings_its_option_parameter_and_name():
    Extended = dataclasses.make_dataclass(
        "Extended",
        [("warmup_epochs", int, recipe_field(3, "epochs of learning-rate warm-up", short="warmup"))],
        bases=(TrainConfig,),
        frozen=True,
    )
    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    add_recipe_options(parser, Extended)
    given = vars(parser.parse_args(["--warmup-epochs", "5", "--learning-rate", "0.0003"]))
    assert given == {"warmup_epochs": 5, "learning_rate": 0.0003}
    assert "epochs of learning-rate warm-up" in parser.format_help()
    config = Extended().replace(**given)
    assert config.params()["warmup_epochs"] == 5
    assert config.label() == "baseline lr=0.0003 warmup=5"
    assert Extended().label() == "baseline"  # the default is the preset's: not named


def test_every_recipe_option_parses_to_its_field():
    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    add_recipe_options(parser)
    given = vars(
        parser.parse_args(
            [
                "--alpha",
                "0.5",
                "--no-feature-cache",
                "--fine-tune-from",
                "none",
                "--target-sensitivity",
                "0.8",
                "0.9",
                "--positive-classes",
                "mel,bcc",
                "--weights",
                "none",
                "--loss",
                "logit_adjusted",
            ]
        )
    )
    config = recipe("baseline", given)
    assert (config.alpha, config.feature_cache, config.fine_tune_from) == (0.5, False, None)
    assert (config.target_sensitivities, config.positive_classes) == ((0.8, 0.9), ("mel", "bcc"))
    params = config.params()
    assert (params["cached_views"], params["positive_classes"], params["target_sensitivities"]) == (
        0,
        "mel,bcc",
        "0.8,0.9",
    )
    assert params["loss"] == "logit_adjusted_crossentropy" and params["augmentation"].startswith("rot=")
    options = {option for action in parser._actions for option in action.option_strings}
    fields = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("option", True)}
    assert len(options) == len(fields) + 3 + 2  # three --no- flags, -h and --help
    with pytest.raises(SystemExit):
        parser.parse_args(["--loss", "hinge"])
