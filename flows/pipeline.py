"""The pipeline flow: download -> split -> train -> evaluate, one parent MLflow run with a child run per stage.

Tasks pass paths, URIs and plain dicts, never Keras objects. Runs on Prefect's ephemeral local API by default, or
against a server when PREFECT_API_URL is set.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from skinml.config import DEFAULT_EXPERIMENT, TrainConfig, preset
from skinml.data.download import download_ham10000
from skinml.data.split import run_split
from skinml.evaluate import evaluate
from skinml.metrics import flat_metrics
from skinml.registry import DEFAULT_MODEL_NAME, promote, register
from skinml.tracking import dump_json, log_params_once, stage_run
from skinml.train import train


@task(retries=3, retry_delay_seconds=[10, 60, 300], cache_policy=NO_CACHE)
def download(data_dir: str | None) -> str:
    """The data folder: the given one, or HAM10000 downloaded (and cached) from Dataverse."""
    return data_dir if data_dir else str(download_ham10000())


@task(cache_policy=NO_CACHE)
def split(data_dir: str, manifest: str, strategy: str, seed: int, experiment: str, parent_run_id: str) -> dict:
    return run_split(data_dir, manifest, strategy, seed, experiment=experiment, parent_run_id=parent_run_id)


@task(cache_policy=NO_CACHE)
def train_model(overrides: dict, preset_name: str, data_dir: str, manifest: str | None, experiment: str,
                parent_run_id: str) -> dict:
    config = preset(preset_name).replace(**overrides)
    return train(config, data_dir, manifest, experiment=experiment, parent_run_id=parent_run_id)


@task(cache_policy=NO_CACHE)
def evaluate_model(model_uri: str, experiment: str, parent_run_id: str) -> dict:
    return evaluate(model_uri, experiment=experiment, parent_run_id=parent_run_id)


@task(cache_policy=NO_CACHE)
def register_model(model_uri: str, model_name: str, metrics: dict) -> dict:
    return register(model_uri, model_name, metrics)


@task(cache_policy=NO_CACHE)
def promote_challenger(model_name: str, margin: float, experiment: str, parent_run_id: str) -> dict:
    return promote(model_name, margin, experiment, parent_run_id)


@flow(name="pipeline", log_prints=True)
def pipeline_flow(data_dir: str | None = None, preset_name: str = "baseline", overrides: dict | None = None,
                  split_strategy: str = "grouped", experiment: str = DEFAULT_EXPERIMENT,
                  output: str | None = None, model_name: str | None = DEFAULT_MODEL_NAME,
                  promotion_margin: float = 0.0) -> dict:
    """Run every stage; returns {parent_run_id, data_dir, split, train, evaluate, registry}.

    With a `model_name` (the default), the model is registered as the new `challenger` and the promotion rule
    runs; `model_name=None` skips the registry.
    """
    overrides = overrides or {}
    logger = get_run_logger()
    with stage_run("pipeline", experiment) as parent:
        parent_id = parent.info.run_id
        log_params_once({**preset(preset_name).replace(**overrides).params(), "split_strategy": split_strategy})
        folder = download(data_dir)
        log_params_once({"data_dir": str(Path(folder).resolve())})
        manifest = str(Path(tempfile.mkdtemp(prefix="skinml-split-")) / "manifest.csv")
        split_summary = split(folder, manifest, split_strategy, overrides.get("seed", 42), experiment, parent_id)
        logger.info("split: %s", split_summary)
        trained = train_model(overrides, preset_name, folder, manifest, experiment, parent_id)
        logger.info("trained: %s", trained["model_uri"])
        evaluated = evaluate_model(trained["model_uri"], experiment, parent_id)
        mlflow.log_metrics({**flat_metrics(evaluated, "test"), **trained["metrics"],
                            "lesions_crossing_splits": split_summary["lesions_crossing_splits"]})
        mlflow.set_tags({"skinml.model_uri": trained["model_uri"], "skinml.train_run_id": trained["run_id"]})
        result = {"parent_run_id": parent_id, "data_dir": folder, "split": split_summary,
                  "train": {k: trained[k] for k in ("run_id", "model_uri", "metrics", "train_seconds")},
                  "evaluate": evaluated}
        if model_name:
            result["registry"] = register_model(trained["model_uri"], model_name,
                                                {k: evaluated[k] for k in ("balanced_accuracy", "macro_auc")})
            result["promotion"] = promote_challenger(model_name, promotion_margin, experiment, parent_id)
            logger.info("registered %s, promotion: %s", result["registry"], result["promotion"]["reason"])
        dump_json(result, output)
        return result


def pipeline(data_dir: str | None, config: TrainConfig, split_strategy: str = "grouped",
             experiment: str = DEFAULT_EXPERIMENT, output: str | None = None,
             model_name: str | None = DEFAULT_MODEL_NAME, promotion_margin: float = 0.0) -> dict:
    """Run the pipeline flow for a training configuration (the changes from its preset travel as flow parameters)."""
    return pipeline_flow(data_dir=data_dir, preset_name=config.preset, overrides=config.preset_overrides(),
                         split_strategy=split_strategy, experiment=experiment, output=output,
                         model_name=model_name, promotion_margin=promotion_margin)


if __name__ == "__main__":
    pipeline_flow()
