"""The experiment's compare view in the MLflow UI: a shared view (MLflow's own "Share" feature, an experiment tag
`mlflow.sharedViewState.<key>`) whose run list has the headline metrics and the recipe's main parameters as columns
and whose chart view opens on what differs between the runs and their test balanced accuracy and macro AUC.

The JSON is the view state MLflow 3.17's UI writes when a user shares a view (the UI reads plain JSON as well as its
own compressed form); docs/mlflow.md shows the result, and what that UI does not let a view change (the decimals of
its charts).
"""

from __future__ import annotations

import json
import urllib.parse

import mlflow

from skinml.mlflow_names import CHAMPION_TAG, FIGURES_TAG, HEADLINE_TEST

VIEW_KEY = "skinml"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
HEADLINE = HEADLINE_TEST
COLUMN_PARAMS = ("preset", "learning_rate", "dropout", "seed")
DEFAULT_UI = "http://127.0.0.1:5000"
# MLflow 3.17's UI shows every page, run pages included, in its model-training mode when the route's query says so;
# otherwise in the mode the browser last picked (GenAI at first).
MODEL_TRAINING = {"workflowType": "machine_learning"}


def _card(uuid: str, section: str, **fields: object) -> dict:
    return {"uuid": uuid, "runsCountToCompare": 10, "metricSectionId": section, "deleted": False,
            "isGenerated": False, **fields}


def _section(uuid: str, name: str, columns: int, card_height: int) -> dict:
    return {"uuid": uuid, "name": name, "columns": columns, "cardHeight": card_height, "display": True,
            "isReordered": False, "deleted": False, "isGenerated": False}


def view_state() -> dict:
    """The shared view: newest runs first, headline columns and the champion mark; the chart view opens on a
    full-width table of what differs between the runs, then their test balanced accuracy and macro AUC side by side."""
    charts = [_card("skinml-difference", "skinml-compare", type="DIFFERENCE",
                    chartName="Parameters that differ, and the figures",
                    compareGroups=["Parameters", "Model metrics"], showChangeFromBaseline=False,
                    showDifferencesOnly=True, baselineColumnUuid="")]
    charts += [_card(f"skinml-{metric}", "skinml-compare", type="BAR", metricKey=metric, displayName=metric)
               for metric in HEADLINE[:2]]
    return {
        "searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": False, "startTime": "ALL",
        "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
        "selectedColumns": ["attributes.`Source`", *(f"params.`{p}`" for p in COLUMN_PARAMS),
                            *(f"metrics.`{m}`" for m in HEADLINE), f"tags.`{CHAMPION_TAG}`",
                            f"tags.`{FIGURES_TAG}`"],
        "compareRunCharts": charts,
        "compareRunSections": [_section("skinml-compare", "Compare", 1, 340)],
        "isAccordionReordered": False, "hideEmptyCharts": False, "useGroupedValuesInCharts": True,
    }


def view_json() -> str:
    """The view as the experiment tag's value."""
    return json.dumps(view_state(), sort_keys=True)


def ui_base(tracking_uri: str | None = None) -> str:
    """The UI's address: the tracking server itself (without a user name and password the URI may hold), or
    `mlflow ui`'s default address for a local store."""
    parsed = urllib.parse.urlparse(tracking_uri or mlflow.get_tracking_uri())
    if parsed.scheme not in ("http", "https"):
        return DEFAULT_UI
    host = parsed.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunparse((parsed.scheme, host, parsed.path.rstrip("/"), "", "", ""))


def view_url(experiment_id: str, tracking_uri: str | None = None) -> str:
    """Where the compare view opens, in the model-training mode."""
    query = urllib.parse.urlencode({"viewStateShareKey": VIEW_KEY, "compareRunsMode": "CHART", **MODEL_TRAINING})
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs?{query}"


def run_url(experiment_id: str, run_id: str, tracking_uri: str | None = None) -> str:
    """A run's page in the model-training mode. The mode holds while the user stays on the run's tabs; the run page's
    links back to the experiment and to a parent run drop it (docs/mlflow.md)."""
    query = urllib.parse.urlencode(MODEL_TRAINING)
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}?{query}"
