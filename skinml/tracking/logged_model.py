"""A logged skinml model resolved once into a value: its classes, the decisions it ships with, the run that trained
it and that run's recipe. The MLmodel file is read once; the recipe (`config.json`) when first asked for."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

import mlflow
from mlflow.exceptions import MlflowException

from skinml.core.errors import ModelMismatchError
from skinml.core.labels import LEGACY_CLASSES, METADATA_KEY
from skinml.core.names import CONFIG_ARTIFACT, DECISIONS_KEY, FAMILIARITY_KEY
from skinml.core.recipe import TrainConfig
from skinml.tracking.runs import download_run_artifact


@dataclass(frozen=True)
class LoggedModel:
    """What skinml needs to know of a logged model, read from its MLmodel file (no model download)."""

    uri: str
    classes: tuple[str, ...]
    decisions: dict
    run_id: str | None  # the run that trained (logged) it
    familiarity: dict = field(default_factory=dict)  # what it keeps to flag unfamiliar images; {} for an older model

    @classmethod
    def resolve(cls, uri: str) -> LoggedModel:
        """The model at `uri` (`models:/name@alias`, `runs:/...`, a model id); MLflow's error when there is none."""
        info = mlflow.models.get_model_info(uri)
        metadata = info.metadata or {}
        classes = metadata.get(METADATA_KEY)
        return cls(
            uri=uri,
            classes=tuple(classes) if classes else LEGACY_CLASSES,
            decisions=dict(metadata.get(DECISIONS_KEY) or {}),
            familiarity=dict(metadata.get(FAMILIARITY_KEY) or {}),
            run_id=info.run_id or None,
        )

    @property
    def training_run_id(self) -> str:
        """The run that trained the model; ModelMismatchError for a model that records none."""
        if not self.run_id:
            raise ModelMismatchError(f"{self.uri} records no training run")
        return self.run_id

    @functools.cached_property
    def recipe(self) -> TrainConfig:
        """The recipe the model was trained with (its training run's `config.json`)."""
        return training_recipe(self.training_run_id)


def training_recipe(run_id: str) -> TrainConfig:
    """The whole recipe a train run logged (`config.json`): what retraining and evaluation read back. A run without
    one that this skinml can read is a ModelMismatchError that says what to do."""
    try:
        return TrainConfig.from_dict(json.loads(download_run_artifact(run_id, CONFIG_ARTIFACT).read_text()))
    except (MlflowException, OSError, ValueError, TypeError) as exc:
        raise ModelMismatchError(
            f"run {run_id} has no {CONFIG_ARTIFACT} that this skinml can read ({str(exc).splitlines()[0]}); retrain "
            "the model once (`skinml pipeline` with the options it was trained with)"
        ) from None
