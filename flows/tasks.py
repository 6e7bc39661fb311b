"""The stages as Prefect tasks. They pass paths, URIs, the recipe (TrainConfig), the run context and plain dicts,
never Keras objects; every one calls the library function of its stage."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.names import read_run_name, train_run_name
from skinml.core.recipe import TrainConfig
from skinml.core.run_context import RunContext
from skinml.data.download import download_ham10000
from skinml.registry.promotion import promote
from skinml.registry.versions import register
from skinml.stages.audit import run_audit
from skinml.stages.evaluate import evaluate
from skinml.stages.split import run_split
from skinml.stages.train import train


@task(retries=3, retry_delay_seconds=[10, 60, 300], cache_policy=NO_CACHE, task_run_name=read_run_name)
def download(data_dir: str | None) -> str:
    """The data folder: the given one, or HAM10000 downloaded (and cached) from Dataverse."""
    return data_dir if data_dir else str(download_ham10000())


@task(cache_policy=NO_CACHE, task_run_name="audit")
def audit(data_dir: str, config: TrainConfig, context: RunContext) -> dict:
    """The audit stage on the folder read as the recipe reads it, suspects ranked on the recipe's backbone weights."""
    return run_audit(
        data_dir,
        weights=config.weights,
        image_size=config.image_size,
        alpha=config.alpha,
        context=context,
        data_format=config.data_format,
        label_map=dict(config.label_map),
    )


@task(cache_policy=NO_CACHE, task_run_name="split {strategy} seed={config.seed}")
def split(
    data_dir: str,
    manifest: str,
    strategy: str,
    config: TrainConfig,
    context: RunContext,
    keep_test_of: str | None = None,
    audit_run_id: str | None = None,
) -> dict:
    """The split stage, the folder read with the recipe's layout and label map, split by its seed (on the groups of
    the audit run when the data needs duplicate groups)."""
    return run_split(
        data_dir,
        manifest,
        strategy,
        seed=config.seed,
        context=context,
        keep_test_of=keep_test_of,
        data_format=config.data_format,
        label_map=dict(config.label_map),
        merge_near_duplicates=config.merge_near_duplicates,
        audit_run_id=audit_run_id,
        exclude_images=config.exclude_images,
    )


@task(cache_policy=NO_CACHE, task_run_name=train_run_name)
def train_model(config: TrainConfig, data_dir: str, manifest: str | None, context: RunContext) -> dict:
    return train(config, data_dir, manifest, context=context)


@task(cache_policy=NO_CACHE, task_run_name="evaluate")
def evaluate_model(model_uri: str, context: RunContext) -> dict:
    return evaluate(model_uri, context=context)


@task(cache_policy=NO_CACHE, task_run_name="register {model_name}")
def register_model(model_uri: str, model_name: str, metrics: dict) -> dict:
    return register(model_uri, model_name, metrics)


@task(cache_policy=NO_CACHE, task_run_name="promote {model_name}")
def promote_challenger(model_name: str, margin: float, context: RunContext) -> dict:
    return promote(model_name, margin, context=context)
