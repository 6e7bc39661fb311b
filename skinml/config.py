"""Typed configuration. The defaults are the baseline recipe; presets are named bundles of overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

DEFAULT_EXPERIMENT = "skinml"
CLASS_WEIGHTS = ("none", "balanced", "sqrt")
LOSSES = ("crossentropy", "logit_adjusted")
SAMPLINGS = ("none", "balanced")
COLOUR_JITTER = ("brightness", "contrast", "saturation", "hue")  # AugmentConfig's colour fields, in order


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation: the baseline's geometry (rotation/zoom/shift/flip), and optional colour jitter."""

    rotation: float = 0.1  # fraction of a full turn, as in keras.layers.RandomRotation (0.1 = +-36 degrees)
    zoom: float = 0.1  # +- fraction
    shift: float = 0.1  # +- fraction of height/width
    flip: bool = True  # horizontal and vertical
    # Colour jitter, off in the baseline (same meaning as keras.layers.RandomBrightness/RandomContrast/RandomHue):
    brightness: float = 0.0  # +- fraction of the value range added to every channel
    contrast: float = 0.0  # contrast factor drawn from [1 - contrast, 1 + contrast]
    saturation: float = 0.0  # saturation multiplied by a factor drawn from [1 - saturation, 1 + saturation]
    hue: float = 0.0  # hue shifted by up to +- hue / 2 of a full turn

    @property
    def colour(self) -> tuple[float, ...]:
        return tuple(getattr(self, name) for name in COLOUR_JITTER)

    @property
    def enabled(self) -> bool:
        return self.rotation > 0 or self.zoom > 0 or self.shift > 0 or self.flip or any(self.colour)

    def describe(self) -> str:
        """Stable text form, used in cache keys and MLflow params (colour only when on, so older keys stay)."""
        text = f"rot={self.rotation},zoom={self.zoom},shift={self.shift},flip={int(self.flip)}"
        return text + (",colour={}/{}/{}/{}".format(*self.colour) if any(self.colour) else "")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults reproduce the baseline."""

    preset: str = "baseline"
    image_size: int = 224
    weights: str = "imagenet"  # "imagenet" | "none" | path to an .h5/.weights.h5 file
    alpha: float = 1.0
    dropout: float = 0.2
    learning_rate: float = 1e-3
    epochs: int = 10
    batch_size: int = 32
    seed: int = 42
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # Frozen backbone: train the head on cached backbone features, each epoch drawing one of
    # `cached_views` augmented views per training image (0 = the plain image only).
    feature_cache: bool = True
    cached_views: int = 2
    # Fine-tuning the top of the backbone: the layers before block `fine_tune_from` stay frozen (with feature_cache,
    # their output is what the cache holds); the head (from that block on) first warms up frozen for `epochs`, then
    # trains unfrozen, BatchNorm kept in inference mode, for `fine_tune_epochs` at `fine_tune_learning_rate`.
    fine_tune_from: str | None = None  # e.g. "block_14"; None keeps the whole backbone frozen
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-4
    class_weight: str = "none"  # "none" | "balanced" (inverse class frequency) | "sqrt" (its square root)
    # "balanced": every epoch draws its training images (with replacement) so that each class is equally likely;
    # the other way to balance the classes, instead of class_weight or the logit-adjusted loss.
    sampling: str = "none"
    label_smoothing: float = 0.0
    colour_constancy: bool = False  # Shades of Gray: each image's colour cast removed before the backbone
    mixup: float = 0.0  # MixUp's Beta(alpha, alpha): blend each training input and target with another; 0 = off
    # "logit_adjusted": cross-entropy of softmax(logits + log(train prior)) (Menon et al., 2021; "balanced softmax"):
    # the model's own output then estimates class probabilities under a uniform prior.
    loss: str = "crossentropy"
    # Fitted on the validation split after training, kept in the model (so served probabilities carry them):
    prior_adjustment: bool = False  # logit adjustment -tau*log(train prior), tau chosen for val balanced accuracy
    temperature_scaling: bool = False  # one temperature minimising val log-loss

    def params(self) -> dict[str, Any]:
        """Flat, stable parameter names for MLflow (see README, 'MLflow naming')."""
        return {
            "preset": self.preset,
            "image_size": self.image_size,
            "weights": self.weights,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "learning_rate": self.learning_rate,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "augmentation": self.augment.describe() if self.augment.enabled else "none",
            "feature_cache": self.feature_cache,
            "cached_views": self.cached_views if self.feature_cache else 0,
            "backbone": f"MobileNetV2(alpha={self.alpha}, " + (
                f"frozen before {self.fine_tune_from})" if self.fine_tune_from else "frozen)"),
            "fine_tune_from": self.fine_tune_from or "none",
            "fine_tune_epochs": self.fine_tune_epochs if self.fine_tune_from else 0,
            "fine_tune_learning_rate": self.fine_tune_learning_rate if self.fine_tune_from else 0,
            "class_weight": self.class_weight,
            "sampling": self.sampling,
            "label_smoothing": self.label_smoothing,
            "mixup": self.mixup,
            "colour_constancy": self.colour_constancy,
            "prior_adjustment": self.prior_adjustment,
            "temperature_scaling": self.temperature_scaling,
            "optimizer": "adam",
            "loss": "categorical_crossentropy" if self.loss == "crossentropy" else "logit_adjusted_crossentropy",
        }

    def validate(self) -> TrainConfig:
        """Self, after checking the fields that have a fixed set of values; raises ValueError naming the field."""
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.loss == "logit_adjusted" and self.class_weight != "none":
            raise ValueError("loss 'logit_adjusted' already balances the classes: use class_weight 'none' with it, "
                             "or loss 'crossentropy' (--loss crossentropy) for class weights")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.sampling == "balanced" and (self.class_weight != "none" or self.loss != "crossentropy"):
            raise ValueError("sampling 'balanced' already balances the classes: use it with class_weight 'none' and "
                             "loss 'crossentropy' (--class-weight none --loss crossentropy)")
        for name, value in zip(COLOUR_JITTER, self.augment.colour):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.mixup < 0.0:
            raise ValueError(f"mixup must be >= 0 (0 = off), got {self.mixup}")
        for name, low in (("epochs", 1), ("batch_size", 1), ("fine_tune_epochs", 0), ("cached_views", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("learning_rate", "fine_tune_learning_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        return self

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated); raises ValueError naming an unknown field.

        `augment` may be a dict of AugmentConfig fields (as flow parameters carry it), changing only those.
        """
        check_field_names(TrainConfig, changes)
        if isinstance(changes.get("augment"), dict):
            check_field_names(AugmentConfig, changes["augment"], prefix="augment.")
            changes = {**changes, "augment": dataclasses.replace(self.augment, **changes["augment"])}
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON (augment as a dict), what a train run logs as `config.json`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> TrainConfig:
        """The configuration `to_dict` wrote (fields it lacks take their defaults)."""
        return cls().replace(**fields)

    def preset_overrides(self) -> dict[str, Any]:
        """The fields that differ from this config's preset, as plain JSON (how flow parameters carry a config)."""
        base, mine = preset(self.preset).to_dict(), self.to_dict()
        return {name: value for name, value in mine.items() if name != "preset" and value != base[name]}


def check_field_names(kind: type, fields: dict[str, Any], prefix: str = "") -> None:
    """Raise ValueError naming the keys of `fields` that are not fields of the dataclass `kind`."""
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(kind)})
    if unknown:
        raise ValueError(f"unknown {kind.__name__} field(s): {', '.join(prefix + name for name in unknown)}")


PRESETS: dict[str, TrainConfig] = {
    "baseline": TrainConfig(),
    # Chosen on the validation split; each change is measured on its own in docs/ablation.md.
    "best": TrainConfig(
        preset="best", cached_views=4, epochs=5, fine_tune_from="block_4", fine_tune_epochs=12,
        fine_tune_learning_rate=2e-4, loss="logit_adjusted", temperature_scaling=True,
    ),
}


def preset(name: str) -> TrainConfig:
    """The named preset's configuration."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
