"""Typed configuration. The defaults are the baseline recipe; presets are named bundles of overrides, and a recipe
is a preset name plus the fields that differ from it (how the CLI, `mlflow run` and every flow pass one)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skinml.core.errors import OptionError
from skinml.core.names import VAL, metric_name

DEFAULT_EXPERIMENT = "skinml"
DEFAULT_MODEL_NAME = "skinml"  # the registered model every command and flow uses unless given another
SPLITS = ("train", "val", "test")  # the parts of a split manifest, in order
SPLIT_STRATEGIES = ("grouped", "random")  # grouped: no lesion on two sides (the default); random: by image
# The sweep's defaults (the CLI, the flows and, by tests/unit/test_prefect_yaml.py, MLproject use these)
SWEEP_STUDY = "skinml-sweep"
SWEEP_TRIALS = 30
SWEEP_METRICS = tuple(metric_name(VAL, figure) for figure in ("balanced_accuracy", "macro_auc", "accuracy"))
SWEEP_EXPERIMENT = "skinml-sweeps"
LOSSES = ("crossentropy", "logit_adjusted")


@dataclass(frozen=True)
class AugmentConfig:
    """The baseline's random augmentation: rotation, zoom, shift and flips."""

    rotation: float = 0.1  # fraction of a full turn, as in keras.layers.RandomRotation (0.1 = +-36 degrees)
    zoom: float = 0.1  # +- fraction
    shift: float = 0.1  # +- fraction of height/width
    flip: bool = True  # horizontal and vertical

    @property
    def enabled(self) -> bool:
        return self.rotation > 0 or self.zoom > 0 or self.shift > 0 or self.flip

    def describe(self) -> str:
        """Stable text form, used in cache keys and MLflow params."""
        return f"rot={self.rotation},zoom={self.zoom},shift={self.shift},flip={int(self.flip)}"


# Options that are not part of a run's name: the data's and the decisions'.
DATA_AND_DECISIONS = (
    "data_format",
    "label_map",
    "merge_near_duplicates",
    "exclude_images",
    "positive_classes",
    "target_sensitivities",
    "target_balanced_accuracy",
    "target_familiar",
)


def weights_path(text: str) -> str:
    """imagenet | none | a weights file, made absolute: the logged config is retrained from other folders too."""
    return text if text in ("imagenet", "none") else str(Path(text).resolve())


def block_or_none(text: str) -> str | None:
    """A MobileNetV2 block to fine-tune from, or None for "none" (the whole backbone frozen)."""
    return None if text == "none" else text


def recipe_field(
    default: Any = None,
    help: str | None = None,
    *,
    short: str | None = None,
    option: bool = True,
    parse: Callable[[str], Any] | None = None,
    param: Callable[[Any], Any] | None = None,
    param_name: str | None = None,
    default_factory: Callable[[], Any] | None = None,
    **argparse_kwargs: Any,
) -> Any:
    """A recipe field and everything said about it in one place: its default, its `skinml` option (`--field-name`,
    with `help`, `parse` as the option's type and any other argparse keyword; `option=False`: none), its short name
    in run names, and its MLflow parameter (`param_name`, default the field's; `param(config)`, default the value)."""
    metadata = {
        "help": help,
        "short": short,
        "option": option,
        "parse": parse,
        "param": param,
        "param_name": param_name,
        "argparse": argparse_kwargs,
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def joined(values: tuple) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults reproduce the baseline. Each field says its option, short
    name and MLflow parameter (`recipe_field`): the CLI (skinml.app.options), params() and label() are made of them."""

    preset: str = recipe_field("baseline", option=False)  # its option lists the presets: skinml.app.options
    image_size: int = recipe_field(224, short="size")
    weights: str = recipe_field("imagenet", "imagenet | none | PATH to a weights file", parse=weights_path)
    alpha: float = recipe_field(1.0, "MobileNetV2's width multiplier (1.0: the ImageNet weights' own)")
    dropout: float = recipe_field(0.2)
    learning_rate: float = recipe_field(1e-3, short="lr")
    epochs: int = recipe_field(10)
    batch_size: int = recipe_field(32, short="batch")
    seed: int = recipe_field(42, "training seed; also the seed of a split made on the way")
    augment: AugmentConfig = recipe_field(
        default_factory=AugmentConfig,
        option=False,
        param_name="augmentation",
        param=lambda c: c.augment.describe() if c.augment.enabled else "none",
    )
    # Frozen backbone: train the head on cached backbone features, each epoch drawing one of
    # `cached_views` augmented views per training image (0 = the plain image only).
    feature_cache: bool = recipe_field(
        True,
        "train on cached features of the frozen part of the backbone (the default); --no-feature-cache: the "
        "plain Keras way, backbone in the loop (e.g. on a GPU)",
        short="cache",
    )
    cached_views: int = recipe_field(
        2,
        "augmented views cached per training image",
        short="views",
        param=lambda c: c.cached_views if c.feature_cache else 0,
    )
    # Fine-tuning the top of the backbone: the layers before block `fine_tune_from` stay frozen (with feature_cache,
    # their output is what the cache holds); the head (from that block on) first warms up frozen for `epochs`, then
    # trains unfrozen, BatchNorm kept in inference mode, for `fine_tune_epochs` at `fine_tune_learning_rate`.
    fine_tune_from: str | None = recipe_field(
        None,
        'fine-tune the backbone from this block on, e.g. "block_4" ("none": keep it all frozen)',
        short="ft_from",
        parse=block_or_none,
        param=lambda c: c.fine_tune_from or "none",
    )
    fine_tune_epochs: int = recipe_field(
        0,
        "epochs with the backbone top unfrozen",
        short="ft_epochs",
        param=lambda c: c.fine_tune_epochs if c.fine_tune_from else 0,
    )
    fine_tune_learning_rate: float = recipe_field(
        1e-4, short="ft_lr", param=lambda c: c.fine_tune_learning_rate if c.fine_tune_from else 0
    )
    # "logit_adjusted": cross-entropy of softmax(logits + log(train prior)) (Menon et al., 2021; "balanced softmax"):
    # the model's own output then estimates class probabilities under a uniform prior. The one way to balance the
    # classes (docs/ablation.md: it beat class weights and class-balanced sampling).
    loss: str = recipe_field(
        "crossentropy",
        "logit_adjusted: balanced-softmax cross-entropy, for balanced accuracy",
        choices=LOSSES,
        param=lambda c: "categorical_crossentropy" if c.loss == "crossentropy" else "logit_adjusted_crossentropy",
    )
    temperature_scaling: bool = recipe_field(
        False, "fit a temperature on validation (calibrated probabilities)", short="temperature"
    )
    # The data: the folder's layout (skinml.data.layouts; "auto" recognises it) and the label map, (from, to)
    # pairs that merge, rename or drop (to "") classes. Part of the recipe: retraining reads them back. Their options
    # are every data command's: skinml.app.options.add_data_options.
    data_format: str = recipe_field("auto", option=False)
    label_map: tuple[tuple[str, str], ...] = recipe_field(
        (), option=False, param=lambda c: ",".join(f"{old}>{new or '(drop)'}" for old, new in c.label_map) or "none"
    )
    # Images the audit finds to be duplicates (skinml.audit) join one group for the split; data that names no group
    # is always grouped so.
    merge_near_duplicates: bool = recipe_field(
        False, "join the groups of near-duplicate images for the split (skinml audit; always when the data has none)"
    )
    # Images left out of the split and training: on the command line a CSV with an image_id column (the audit's
    # label_suspects.csv, or a list of one's own), here the ids themselves, so that retraining needs no file.
    exclude_images: tuple[str, ...] = recipe_field(
        (),
        "a CSV with an image_id column (e.g. the audit's label_suspects.csv): those images are left out",
        metavar="FILE",
        param=lambda c: len(c.exclude_images),
        param_name="excluded_images",
    )
    # Decisions (skinml.evaluation.decisions), chosen on validation and shipped with the model: the classes that
    # mean "refer" (empty: HAM10000's mel, bcc, akiec, or a binary model's class named malignant or the like), the
    # sensitivities to choose referral thresholds for, and the balanced accuracy the images the model does not
    # defer must reach.
    positive_classes: tuple[str, ...] = recipe_field(
        (),
        'the classes that mean "refer", comma-separated (default: HAM10000\'s mel,bcc,akiec, or a binary '
        "model's malignant class)",
        metavar="CLASSES",
        param=lambda c: joined(c.positive_classes) or "default",
    )
    target_sensitivities: tuple[float, ...] = recipe_field(
        (0.90, 0.95),
        "sensitivities to choose referral thresholds for on validation (default 0.90 0.95)",
        parse=float,
        flags=("--target-sensitivity",),
        nargs="+",
        metavar="S",
        param=lambda c: joined(c.target_sensitivities),
    )
    target_balanced_accuracy: float = recipe_field(
        0.80, "balanced accuracy the images the model does not defer must reach (default 0.80)", metavar="B"
    )
    # Familiarity (skinml.evaluation.familiarity): the share of validation images the threshold keeps familiar;
    # an image farther from the training images than the threshold is flagged unfamiliar and deferred.
    target_familiar: float = recipe_field(
        0.99, "share of validation images the familiarity threshold keeps familiar (default 0.99)", metavar="F"
    )

    def params(self) -> dict[str, Any]:
        """Flat, stable parameter names for MLflow (docs/mlflow.md): one per field (its `recipe_field` says how), and
        the backbone and optimizer they imply."""
        named = {}
        for f in dataclasses.fields(self):
            to_param = f.metadata.get("param")
            named[f.metadata.get("param_name") or f.name] = to_param(self) if to_param else getattr(self, f.name)
        named["backbone"] = f"MobileNetV2(alpha={self.alpha}, " + (
            f"frozen before {self.fine_tune_from})" if self.fine_tune_from else "frozen)"
        )
        named["optimizer"] = "adam"
        return named

    def validate(self) -> TrainConfig:
        """Self, after checking every field with a fixed set or range of values; raises ValueError naming it."""
        if self.loss not in LOSSES:
            raise OptionError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name, low in (("epochs", 1), ("batch_size", 1), ("fine_tune_epochs", 0), ("cached_views", 0)):
            if getattr(self, name) < low:
                raise OptionError(f"{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("learning_rate", "fine_tune_learning_rate"):
            if getattr(self, name) <= 0:
                raise OptionError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise OptionError(f"dropout must be in [0, 1), got {self.dropout}")
        for name, values in (
            ("target_sensitivities", self.target_sensitivities),
            ("target_balanced_accuracy", (self.target_balanced_accuracy,)),
            ("target_familiar", (self.target_familiar,)),
        ):
            if not values or not all(0.0 < value < 1.0 for value in values):
                raise OptionError(f"{name} must be in (0, 1), got {values}")
        return self

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated); raises ValueError naming an unknown field.

        `augment` may be a dict of AugmentConfig fields (as flow parameters carry it), changing only those.
        """
        check_field_names(type(self), changes)
        if "label_map" in changes:  # JSON and flow parameters carry it as a dict or a list of pairs
            pairs = changes["label_map"]
            pairs = pairs.items() if isinstance(pairs, dict) else (pairs or ())
            changes = {**changes, "label_map": tuple(sorted((str(old), str(new or "")) for old, new in pairs))}
        if "exclude_images" in changes:  # ids: the command line reads the file (skinml.app.options)
            if isinstance(changes["exclude_images"], str):
                raise OptionError("exclude_images takes a list of image ids (a file: --exclude-images FILE)")
            changes = {**changes, "exclude_images": tuple(sorted({str(i) for i in changes["exclude_images"] or ()}))}
        for name, kind in (("positive_classes", str), ("target_sensitivities", float)):
            if name in changes:  # a list in JSON, a comma-separated text on the command line
                values = changes[name]
                values = values.split(",") if isinstance(values, str) else values
                changes = {
                    **changes,
                    name: tuple(kind(str(v).strip().lower() if kind is str else v) for v in values if str(v).strip()),
                }
        if isinstance(changes.get("augment"), dict):
            check_field_names(AugmentConfig, changes["augment"], prefix="augment.")
            changes = {**changes, "augment": dataclasses.replace(self.augment, **changes["augment"])}
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON (augment as a dict, label_map as a list of pairs), what a train run logs as
        `config.json`."""
        return {
            **dataclasses.asdict(self),
            "label_map": [list(pair) for pair in self.label_map],
            "exclude_images": list(self.exclude_images),
            "positive_classes": list(self.positive_classes),
            "target_sensitivities": list(self.target_sensitivities),
        }

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> TrainConfig:
        """The configuration `to_dict` wrote (fields it lacks take their defaults)."""
        return cls().replace(**fields)

    def label(self) -> str:
        """The preset and what differs from it, short enough for a run name: 'baseline', 'best seed=1',
        'baseline lr=0.0003 dropout=0.3' (a weights file is not named: every weights file is ImageNet's here)."""
        parts = [self.preset]
        for name, value in self.preset_overrides().items():
            if (name == "weights" and value != "none") or name in DATA_AND_DECISIONS:
                continue  # the data's options are parameters, not part of a run's name
            if name == "augment":
                value = self.augment.describe()
            short = self.__dataclass_fields__[name].metadata.get("short") or name
            parts.append(f"{short}={value:g}" if isinstance(value, float) else f"{short}={value}")
        return " ".join(parts)

    def preset_overrides(self) -> dict[str, Any]:
        """The fields that differ from this config's preset, as plain JSON (a recipe's overrides)."""
        chosen = preset(self.preset)  # in this config's class, whose fields may be more than TrainConfig's
        base = type(self)(**{f.name: getattr(chosen, f.name) for f in dataclasses.fields(chosen)}).to_dict()
        mine = self.to_dict()
        return {name: value for name, value in mine.items() if name != "preset" and value != base[name]}


def check_field_names(kind: type, fields: dict[str, Any], prefix: str = "") -> None:
    """Raise ValueError naming the keys of `fields` that are not fields of the dataclass `kind`."""
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(kind)})
    if unknown:
        raise OptionError(f"unknown {kind.__name__} field(s): {', '.join(prefix + name for name in unknown)}")


PRESETS: dict[str, TrainConfig] = {
    "baseline": TrainConfig(),
    # Chosen on the validation split; each change is measured on its own in docs/ablation.md.
    "best": TrainConfig(
        preset="best",
        cached_views=4,
        epochs=5,
        fine_tune_from="block_4",
        fine_tune_epochs=12,
        fine_tune_learning_rate=2e-4,
        loss="logit_adjusted",
        temperature_scaling=True,
    ),
}


def preset(name: str) -> TrainConfig:
    """The named preset's configuration."""
    try:
        return PRESETS[name]
    except KeyError:
        raise OptionError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def recipe(preset_name: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The configuration of a recipe: the named preset with `overrides` (TrainConfig fields) applied, validated."""
    return preset(preset_name).replace(**(overrides or {}))
