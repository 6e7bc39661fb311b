"""The work-pool deployment file points at a real flow and a valid cron schedule."""

import importlib
from pathlib import Path

import yaml
from prefect.client.schemas.schedules import CronSchedule

REPO = Path(__file__).resolve().parents[2]


def test_prefect_yaml_deployment_is_loadable():
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = config["deployments"]
    assert deployment["name"] == "skinml-retrain"
    module_path, flow_name = deployment["entrypoint"].split(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, flow_name)
    assert flow.name == "retrain"
    assert set(deployment["parameters"]) <= set(flow.parameters.properties)
    from skinml.core.recipe import DEFAULT_MODEL_NAME

    assert deployment["parameters"]["model_name"] == DEFAULT_MODEL_NAME  # the library's default, spelled out
    CronSchedule(cron=deployment["schedules"][0]["cron"])  # raises on an invalid expression


def test_mlproject_sweep_defaults_are_the_librarys():
    from skinml.core.recipe import SWEEP_STUDY, SWEEP_TRIALS

    parameters = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]["sweep"]["parameters"]
    assert parameters["n_trials"]["default"] == str(SWEEP_TRIALS)
    assert parameters["study_name"]["default"] == SWEEP_STUDY
