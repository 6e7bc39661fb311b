"""The retrain flow: re-read the (possibly grown) data folder, retrain with the champion's hyperparameters (or the
baseline), evaluate on the champion's fixed test split, register the challenger and apply the promotion rule.

`skinml schedule --cron EXPR` serves it as deployment `retrain/skinml-retrain`; prefect.yaml has the work-pool route.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.pipeline import download, evaluate_model, promote_challenger, register_model, train_model
from skinml.config import DEFAULT_EXPERIMENT, TrainConfig, preset
from skinml.data.dataset import load_dataset
from skinml.data.split import log_manifest, make_split, split_keeping_test
from skinml.evaluate import run_manifest
from skinml.registry import CHAMPION, DEFAULT_MODEL_NAME, version_by_alias
from skinml.tracking import download_run_artifact, log_params_once, stage_run

DEPLOYMENT_NAME = "skinml-retrain"
# The fields that older runs' config.json (their flat MLflow params) carried faithfully.
LEGACY_FIELDS = ("image_size", "weights", "alpha", "dropout", "learning_rate", "epochs", "batch_size", "seed",
                 "cached_views", "feature_cache")


def champion_recipe(model_name: str) -> tuple[str, dict, str | None]:
    """(preset, the champion's changes from that preset, its training run id), or the baseline when there is none.

    The champion's `config.json` holds its whole TrainConfig, so the challenger is trained with the same recipe.
    """
    champion = version_by_alias(model_name, CHAMPION)
    if champion is None:
        return "baseline", {}, None
    logged = json.loads(download_run_artifact(champion.run_id, "config.json").read_text())
    older = "augmentation" in logged  # a flat MLflow param, never a TrainConfig field
    config = legacy_config(logged) if older else TrainConfig.from_dict(logged)
    return config.preset, config.preset_overrides(), champion.run_id


def legacy_config(params: dict) -> TrainConfig:
    """The config of a run logged before config.json held the whole TrainConfig (it held the flat params):
    its preset with the fields that the params carried as they are."""
    fields = {k: params[k] for k in LEGACY_FIELDS if k in params}
    if isinstance(params.get("augment"), dict):
        fields["augment"] = params["augment"]
    return preset(params.get("preset", "baseline")).replace(**fields)


@task(cache_policy=NO_CACHE)
def retrain_split(data_dir: str, champion_run_id: str | None, seed: int, experiment: str,
                  parent_run_id: str) -> str:
    """The manifest for retraining: the champion's test split kept fixed, the rest re-split; logged."""
    with stage_run("split", experiment, parent_run_id):
        frame = load_dataset(data_dir)
        if champion_run_id:
            manifest = split_keeping_test(frame, run_manifest(champion_run_id), seed=seed)
            mlflow.set_tag("skinml.test_split_from_run", champion_run_id)
        else:
            manifest = make_split(frame, seed=seed)
        path = Path(tempfile.mkdtemp(prefix="skinml-retrain-")) / "manifest.csv"
        manifest.to_csv(path, index=False)
        log_manifest(manifest, data_dir)
        return str(path)


@flow(name="retrain", log_prints=True)
def retrain_flow(data_dir: str | None = None, model_name: str = DEFAULT_MODEL_NAME,
                 experiment: str = DEFAULT_EXPERIMENT, promotion_margin: float = 0.0,
                 overrides: dict | None = None) -> dict:
    """Retrain, evaluate on the fixed test split, register the challenger, apply the promotion rule."""
    logger = get_run_logger()
    preset_name, recipe, champion_run_id = champion_recipe(model_name)
    recipe.update(overrides or {})
    with stage_run("retrain", experiment) as parent:
        parent_id = parent.info.run_id
        log_params_once({**preset(preset_name).replace(**recipe).params(), "model_name": model_name,
                         "champion_run_id": champion_run_id or "none"})
        folder = download(data_dir)
        manifest = retrain_split(folder, champion_run_id, recipe.get("seed", 42), experiment, parent_id)
        trained = train_model(recipe, preset_name, folder, manifest, experiment, parent_id)
        evaluated = evaluate_model(trained["model_uri"], experiment, parent_id)
        registered = register_model(trained["model_uri"], model_name,
                                    {k: evaluated[k] for k in ("balanced_accuracy", "macro_auc")})
        decision = promote_challenger(model_name, promotion_margin, experiment, parent_id)
        logger.info("retrained %s v%s: %s", model_name, registered["version"], decision["reason"])
        mlflow.log_metric("test_balanced_accuracy", evaluated["balanced_accuracy"])
        return {"parent_run_id": parent_id, "registry": registered, "promotion": decision,
                "test_balanced_accuracy": evaluated["balanced_accuracy"]}


def serve_retraining(cron: str, data_dir: str | None, model_name: str = DEFAULT_MODEL_NAME,
                     overrides: dict | None = None, experiment: str = DEFAULT_EXPERIMENT) -> None:
    """Serve the retrain flow as deployment `retrain/skinml-retrain` on a cron schedule (blocks, like flow.serve).

    `overrides` (training options) apply on top of the champion's hyperparameters at every run.
    """
    retrain_flow.serve(name=DEPLOYMENT_NAME, cron=cron,
                       parameters={"data_dir": data_dir, "model_name": model_name, "experiment": experiment,
                                   "overrides": overrides or {}})
