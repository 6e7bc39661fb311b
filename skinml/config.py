"""Typed configuration. The defaults are the baseline recipe; presets are named bundles of overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

DEFAULT_EXPERIMENT = "skinml"


@dataclass(frozen=True)
class AugmentConfig:
    """Random geometric augmentation (the baseline's rotation/zoom/shift/flip)."""

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
            "backbone": f"MobileNetV2(alpha={self.alpha}, frozen)",
            "optimizer": "adam",
            "loss": "categorical_crossentropy",
        }

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed; `None` values are ignored (handy for CLI options)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


PRESETS: dict[str, TrainConfig] = {
    "baseline": TrainConfig(),
}


def preset(name: str) -> TrainConfig:
    """The named preset's configuration."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
