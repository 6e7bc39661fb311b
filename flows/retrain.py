"""The retrain flow: re-read the (possibly grown) data folder, retrain with the champion's recipe (or the baseline),
keeping the champion's test split fixed, then the challenger's stages (evaluate, register, promote).

`skinml schedule --cron EXPR` serves it as deployment `retrain/skinml-retrain`; prefect.yaml has the work-pool route.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import tzlocal
from prefect import flow, get_run_logger
from prefect.deployments.runner import EntrypointType
from prefect.schedules import Cron

from flows.artifacts import publish_result
from flows.challenger import run_challenger
from flows.names import retrain_run_name
from flows.stopping import stops_like_skinml
from flows.tasks import download, split
from skinml.core.errors import ModelMismatchError
from skinml.core.recipe import DEFAULT_EXPERIMENT, DEFAULT_MODEL_NAME, TrainConfig, preset
from skinml.core.run_context import RunContext
from skinml.registry.versions import CHAMPION, version_by_alias
from skinml.tracking.logged_model import training_recipe
from skinml.tracking.runs import log_params_once, stage_run
from skinml.tracking.summary import name_parent, run_name

DEPLOYMENT_NAME = "skinml-retrain"


def champion_recipe(model_name: str, fallback_preset: str = "baseline") -> tuple[TrainConfig, str | None]:
    """The champion's whole recipe (its training run's `config.json`, skinml.tracking.logged_model.training_recipe)
    and its training run id; the `fallback_preset` and None when there is no champion. A champion whose recipe this
    version cannot read is an error that says to retrain it once."""
    champion = version_by_alias(model_name, CHAMPION)
    if champion is None:
        return preset(fallback_preset), None
    try:
        return training_recipe(champion.run_id), champion.run_id
    except ModelMismatchError as exc:
        raise ModelMismatchError(
            f"the champion {model_name} v{champion.version}: {exc}, and move the `champion` alias to the new version"
        ) from None


@flow(name="retrain", flow_run_name=retrain_run_name, log_prints=True)
def retrain_flow(
    data_dir: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    experiment: str = DEFAULT_EXPERIMENT,
    promotion_margin: float = 0.0,
    overrides: dict | None = None,
    preset_name: str = "baseline",
) -> dict:
    """Retrain, evaluate on the fixed test split, register the challenger, apply the promotion rule.

    The recipe is the champion's (`preset_name` when there is no champion yet), with `overrides` (TrainConfig fields)
    on top.
    """
    champion_config, champion_run_id = champion_recipe(model_name, preset_name)
    config = champion_config.replace(**(overrides or {}))
    label = f"retrain {date.today()} {config.label()}"
    with stops_like_skinml(), stage_run("retrain", RunContext(experiment), name=label) as parent:
        parent_id = parent.info.run_id
        stages = RunContext(experiment, parent_id)
        log_params_once({**config.params(), "model_name": model_name, "champion_run_id": champion_run_id or "none"})
        folder = download(data_dir)
        manifest = str(Path(tempfile.mkdtemp(prefix="skinml-retrain-")) / "manifest.csv")
        classes = split(folder, manifest, "grouped", config, stages, keep_test_of=champion_run_id)["classes"]
        link = name_parent(parent_id, run_name(label, folder, classes), classes)
        result = run_challenger(
            config, folder, manifest, context=stages, model_name=model_name, promotion_margin=promotion_margin
        )
        get_run_logger().info(
            "retrained %s v%s: %s",
            result["registry"]["name"],
            result["registry"]["version"],
            result["promotion"]["reason"],
        )
        result = {"parent_run_id": parent_id, **result, "mlflow_ui": link}
        publish_result(result, "retrain")
        return result


def serve_retraining(
    cron: str,
    data_dir: str | None,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    overrides: dict | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    promotion_margin: float = 0.0,
    preset_name: str = "baseline",
    timezone: str | None = None,
) -> None:
    """Serve the retrain flow as deployment `retrain/skinml-retrain` on a cron schedule in `timezone` (default this
    machine's), blocking like flow.serve."""
    retrain_flow.serve(
        name=DEPLOYMENT_NAME,
        schedules=[Cron(cron, timezone=timezone or tzlocal.get_localzone_name())],
        description="Retrain the champion's recipe on the data folder, keep its test split, register "
        "the challenger and apply the promotion rule.",
        entrypoint_type=EntrypointType.MODULE_PATH,  # flows.retrain: the same from any folder
        parameters={
            "data_dir": data_dir,
            "model_name": model_name,
            "experiment": experiment,
            "promotion_margin": promotion_margin,
            "overrides": overrides or {},
            "preset_name": preset_name,
        },
    )
