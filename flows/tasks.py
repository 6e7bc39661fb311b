"""The stages as Prefect tasks. They pass paths, URIs, a recipe (preset name + overrides) and plain dicts, never
Keras objects; every one calls the library function of its stage."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.names import read_run_name, train_run_name
from skinml.config import TrainConfig, recipe
from skinml.data.download import download_ham10000
from skinml.evaluate import evaluate
from skinml.manifests import run_split
from skinml.registry import promote, register
from skinml.train import train


@task(retries=3, retry_delay_seconds=[10, 60, 300], cache_policy=NO_CACHE, task_run_name=read_run_name)
def download(data_dir: str | None) -> str:
    """The data folder: the given one, or HAM10000 downloaded (and cached) from Dataverse."""
    return data_dir if data_dir else str(download_ham10000())


@task(cache_policy=NO_CACHE, task_run_name="split {strategy} seed={config.seed}")
def split(data_dir: str, manifest: str, strategy: str, config: TrainConfig, experiment: str, parent_run_id: str,
          keep_test_of: str | None = None) -> dict:
    """The split stage, the folder read with the recipe's layout and label map, split by its seed."""
    return run_split(data_dir, manifest, strategy, config.seed, experiment=experiment, parent_run_id=parent_run_id,
                     keep_test_of=keep_test_of, data_format=config.data_format, label_map=dict(config.label_map))


@task(cache_policy=NO_CACHE, task_run_name=train_run_name)
def train_model(preset_name: str, overrides: dict, data_dir: str, manifest: str | None, experiment: str,
                parent_run_id: str | None) -> dict:
    return train(recipe(preset_name, overrides), data_dir, manifest, experiment=experiment,
                 parent_run_id=parent_run_id)


@task(cache_policy=NO_CACHE, task_run_name="evaluate")
def evaluate_model(model_uri: str, experiment: str, parent_run_id: str | None) -> dict:
    return evaluate(model_uri, experiment=experiment, parent_run_id=parent_run_id)


@task(cache_policy=NO_CACHE, task_run_name="register {model_name}")
def register_model(model_uri: str, model_name: str, metrics: dict) -> dict:
    return register(model_uri, model_name, metrics)


@task(cache_policy=NO_CACHE, task_run_name="promote {model_name}")
def promote_challenger(model_name: str, margin: float, experiment: str, parent_run_id: str | None) -> dict:
    return promote(model_name, margin, experiment, parent_run_id)
