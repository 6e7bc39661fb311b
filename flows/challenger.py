"""The challenger's stages: train a recipe -> evaluate on the test split -> register -> apply the promotion rule.

The pipeline, scheduled retraining and the sweep's final retraining all end with them, under their own parent MLflow
run, as task runs of their own flow run: the flow run's page in Prefect's UI lists every stage.
"""

from __future__ import annotations

from prefect import get_run_logger

from flows.tasks import evaluate_model, promote_challenger, register_model, train_model
from skinml.core.recipe import DEFAULT_MODEL_NAME, TrainConfig
from skinml.core.run_context import RunContext
from skinml.registry.versions import version_aliases
from skinml.tracking.summary import summarize_parent


def run_challenger(
    config: TrainConfig,
    data_dir: str,
    manifest: str | None,
    *,
    context: RunContext,
    model_name: str | None = DEFAULT_MODEL_NAME,
    promotion_margin: float = 0.0,
) -> dict:
    """Returns {train, evaluate[, registry, promotion]}. `manifest` None: a lesion-grouped split by the recipe's seed.

    With a `model_name` (the default), the model becomes the registry's new `challenger` and the promotion rule runs
    with `promotion_margin`; `model_name=None` stops after the evaluation. The parent run gets the headline metrics
    and a description.
    """
    logger = get_run_logger()
    trained = train_model(config, data_dir, manifest, context)
    logger.info("trained: %s", trained["model_uri"])
    evaluated = evaluate_model(trained["model_uri"], context)
    result = {
        "train": {k: trained[k] for k in ("run_id", "model_uri", "metrics", "train_seconds", "classes")},
        "evaluate": evaluated,
    }
    if model_name:
        result["registry"] = register_model(
            trained["model_uri"],
            model_name,
            {k: evaluated[k] for k in ("balanced_accuracy", "macro_auc", "decisions", "familiarity") if k in evaluated},
        )
        # the name the registry chose: another when the data's classes differ from the champion's
        # (skinml.registry.versions.name_for_classes)
        result["promotion"] = promote_challenger(result["registry"]["name"], promotion_margin, context)
        # the registry as it is after the promotion, for the result, the artifacts and the parent's description
        result["registry"]["aliases"] = version_aliases(result["registry"]["name"], result["registry"]["version"])
        registry = result["registry"]
        logger.info(
            "registered %s v%s (%s); promotion: %s",
            registry["name"],
            registry["version"],
            ", ".join(registry["aliases"]),
            result["promotion"]["reason"],
        )
    if context.parent_run_id:
        summarize_parent(
            context.parent_run_id,
            config,
            trained,
            evaluated,
            registry=result.get("registry"),
            promotion=result.get("promotion"),
        )
    return result
