"""The train stage: a classifier trained on a labelled split (skinml.training.fit), then logged with its recipe,
split and model to one MLflow run."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import mlflow

from skinml.core.memory import peak_rss_mb
from skinml.core.names import (
    BACKBONE_ENGINE_TAG,
    BACKBONE_PRECISION_TAG,
    CLASSES_TAG,
    CONFIG_ARTIFACT,
    PEAK_RSS_MB_TAG,
    TRAIN_SECONDS_TAG,
)
from skinml.core.recipe import TrainConfig
from skinml.core.run_context import RunContext
from skinml.data.dataset import names_groups
from skinml.data.split import read_manifest
from skinml.data.training_set import labelled_split
from skinml.evaluation.decisions import positive_group
from skinml.features.cache import FeatureCache
from skinml.model.engine import effective_precision, pick_engine
from skinml.stages.grouping import regroup_for
from skinml.tracking.runs import dump_json, log_epoch, log_params_once, stage_run
from skinml.tracking.splits import log_manifest
from skinml.tracking.trainings import log_training
from skinml.training.fit import fit_classifier

log = logging.getLogger("skinml.train")  # the name users see on training lines


def train(
    config: TrainConfig,
    data_dir: str | Path,
    manifest_path: str | Path | None = None,
    *,
    context: RunContext = RunContext(),
    cache: FeatureCache | None = None,
    output: str | Path | None = None,
) -> dict:
    """Train a classifier on the split in `manifest_path` (else a lesion-grouped split by the config's seed) and log
    everything to MLflow; returns {run_id, model_uri, metrics, ...}."""
    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    manifest = read_manifest(manifest_path) if manifest_path else None
    # bad data: no run at all
    data, manifest, classes = labelled_split(data_dir, manifest, config, regroup=regroup_for(config))
    if not positive_group(classes, config.positive_classes):  # a positive class the data lacks: refused here
        log.warning(
            "no class of %s is a malignant one: no referral threshold is chosen (name the classes that mean refer "
            "with --positive-classes A,B)",
            list(classes),
        )
    with stage_run("train", context, name=f"train {config.label()}") as run:
        log_params_once({**config.params(), "data_dir": str(Path(data_dir).resolve())})
        mlflow.log_dict(config.to_dict(), CONFIG_ARTIFACT)  # the whole recipe: what retraining reads back
        mlflow.set_tags(
            {
                BACKBONE_ENGINE_TAG: pick_engine() if config.feature_cache else "tensorflow",
                BACKBONE_PRECISION_TAG: effective_precision() if config.feature_cache else "f32",
                CLASSES_TAG: ",".join(classes),
                **data.attrs.get("data_tags", {}),
            }
        )
        log_manifest(manifest, data_dir, grouped=names_groups(data))
        trained = fit_classifier(config, data, classes, cache=cache, on_epoch=log_epoch)
        model_info = log_training(trained, classes)
        train_seconds = time.perf_counter() - started
        peak_mb = peak_rss_mb()
        mlflow.set_tags({TRAIN_SECONDS_TAG: f"{train_seconds:.1f}", PEAK_RSS_MB_TAG: f"{peak_mb:.0f}"})
        result = {
            "run_id": run.info.run_id,
            "model_uri": model_info.model_uri,
            "runs_model_uri": f"runs:/{run.info.run_id}/model",
            "metrics": {name: values[-1] for name, values in trained.history.items()},
            "train_seconds": train_seconds,
            "peak_rss_mb": peak_mb,
            "config": config.params(),
            "classes": list(classes),
        }
        dump_json(result, output)
        return result
