"""The pipeline flow: download -> audit -> split -> train -> evaluate -> register -> promote, one parent MLflow run
with a child run per stage. Runs on Prefect's ephemeral local API by default, or against a server when
PREFECT_API_URL is set."""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow, get_run_logger

from flows.artifacts import publish_audit, publish_result
from flows.challenger import run_challenger
from flows.names import pipeline_run_name
from flows.stopping import stops_like_skinml
from flows.tasks import audit, download, split
from skinml.core.recipe import DEFAULT_EXPERIMENT, DEFAULT_MODEL_NAME, recipe
from skinml.core.run_context import RunContext
from skinml.tracking.runs import dump_json, log_params_once, stage_run
from skinml.tracking.summary import name_parent, run_name


@flow(name="pipeline", flow_run_name=pipeline_run_name, log_prints=True)
def pipeline_flow(
    data_dir: str | None = None,
    preset_name: str = "baseline",
    overrides: dict | None = None,
    split_strategy: str = "grouped",
    experiment: str = DEFAULT_EXPERIMENT,
    output: str | None = None,
    model_name: str | None = DEFAULT_MODEL_NAME,
    promotion_margin: float = 0.0,
) -> dict:
    """Run every stage for the recipe (preset + overrides); returns {parent_run_id, data_dir, audit, split, train,
    evaluate[, registry, promotion], mlflow_ui}, also shown as the flow run's Prefect artifacts (flows/artifacts.py).
    `model_name=None` skips the registry."""
    config = recipe(preset_name, overrides)  # refuses a bad recipe before any work
    with stops_like_skinml(), stage_run("pipeline", RunContext(experiment), name=config.label()) as parent:
        parent_id = parent.info.run_id
        stages = RunContext(experiment, parent_id)
        log_params_once({**config.params(), "split_strategy": split_strategy})
        folder = download(data_dir)
        log_params_once({"data_dir": str(Path(folder).resolve())})
        manifest = str(Path(tempfile.mkdtemp(prefix="skinml-split-")) / "manifest.csv")
        audit_summary = audit(folder, config, stages)
        publish_audit(audit_summary)
        split_summary = split(folder, manifest, split_strategy, config, stages, audit_run_id=audit_summary["run_id"])
        get_run_logger().info(
            "split %s: %d train / %d val / %d test images, %s lesions on two sides",
            split_summary["strategy"],
            split_summary["n_train"],
            split_summary["n_val"],
            split_summary["n_test"],
            split_summary["lesions_crossing_splits"],
        )
        link = name_parent(
            parent_id, run_name(config.label(), folder, split_summary["classes"]), split_summary["classes"]
        )
        result = run_challenger(
            config, folder, manifest, context=stages, model_name=model_name, promotion_margin=promotion_margin
        )
        result = {
            "parent_run_id": parent_id,
            "data_dir": folder,
            "audit": audit_summary,
            "split": split_summary,
            **result,
            "mlflow_ui": link,
        }
        dump_json(result, output)
        publish_result(result, "pipeline")
        return result


if __name__ == "__main__":
    pipeline_flow()
