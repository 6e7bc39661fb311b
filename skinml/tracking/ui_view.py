"""The experiment's compare views in the MLflow UI: shared views (MLflow's own "Share" feature, an experiment tag
`mlflow.sharedViewState.<key>`) whose run list has the champion mark, the headline metrics and the recipe's main
parameters as columns and whose chart view opens on what differs between the runs and their test balanced accuracy
and macro AUC. One view per label set (`skinml-<classes>`: only runs of those classes, so that a 3-class run is never
charted against 7-class runs). MLflow's shared views carry columns, their order and
widths, charts and the search, not pinned runs: the champion mark is the list's first column after the run's name.

The JSON is the view state MLflow 3.17's UI writes when a user shares a view (the UI reads plain JSON as well as its
own compressed form); docs/mlflow.md shows the result, and what that UI does not let a view change (the decimals of
its charts).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence

import mlflow

from skinml.core.labels import label_set_slug
from skinml.core.names import CHAMPION_TAG, CLASSES_TAG, FIGURES_TAG, HEADLINE_TEST

VIEW_KEY = "skinml"
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
HEADLINE = HEADLINE_TEST
COLUMN_PARAMS = ("preset", "learning_rate", "dropout", "seed")
RUN_NAME_COLUMN = "tags.`mlflow.runName`"  # the list's column ids: the search keys of what they show
DEFAULT_UI = "http://127.0.0.1:5000"
# MLflow 3.17's UI shows every page, run pages included, in its model-training mode when the route's query says so;
# otherwise in the mode the browser last picked (GenAI at first).
MODEL_TRAINING = {"workflowType": "machine_learning"}


def _card(uuid: str, section: str, **fields: object) -> dict:
    return {
        "uuid": uuid,
        "runsCountToCompare": 10,
        "metricSectionId": section,
        "deleted": False,
        "isGenerated": False,
        **fields,
    }


def _section(uuid: str, name: str, columns: int, card_height: int) -> dict:
    return {
        "uuid": uuid,
        "name": name,
        "columns": columns,
        "cardHeight": card_height,
        "display": True,
        "isReordered": False,
        "deleted": False,
        "isGenerated": False,
    }


def view_key(classes: Sequence[str]) -> str:
    """`skinml-<classes>` (labels.label_set_slug), the key of one label set's view."""
    return f"{VIEW_KEY}-{label_set_slug(classes)}"


def view_tag(classes: Sequence[str]) -> str:
    """The experiment tag that holds the view of `classes`."""
    return VIEW_TAG_PREFIX + view_key(classes)


def classes_filter(classes: Sequence[str]) -> str:
    """The run search that keeps the runs of one label set (train and parent runs carry the classes as a tag)."""
    value = ",".join(classes)
    quote = '"' if "'" in value else "'"  # MLflow's search has no escape; either quote delimits a string
    return f"tags.`{CLASSES_TAG}` = {quote}{value}{quote}"


def view_state(classes: Sequence[str]) -> dict:
    """The shared view of one label set: its runs only, newest first, the champion mark first, then the headline
    columns. The chart view opens on a full-width table of what differs between the runs, then their test
    balanced accuracy and macro AUC."""
    charts = [
        _card(
            "skinml-difference",
            "skinml-compare",
            type="DIFFERENCE",
            chartName="Parameters that differ, and the figures",
            compareGroups=["Parameters", "Model metrics"],
            showChangeFromBaseline=False,
            showDifferencesOnly=True,
            baselineColumnUuid="",
        )
    ]
    columns = [
        f"tags.`{CHAMPION_TAG}`",
        *(f"metrics.`{m}`" for m in HEADLINE),
        *(f"params.`{p}`" for p in COLUMN_PARAMS),
        f"tags.`{FIGURES_TAG}`",
        "attributes.`Source`",
    ]
    charts += [
        _card(f"skinml-{metric}", "skinml-compare", type="BAR", metricKey=metric, displayName=metric)
        for metric in HEADLINE[:2]
    ]
    return {
        "searchFilter": classes_filter(classes),
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": columns,
        "columnOrder": [RUN_NAME_COLUMN, *columns],
        "columnWidths": {column: 120 for column in columns if not column.startswith("attributes.")},
        "compareRunCharts": charts,
        "compareRunSections": [_section("skinml-compare", "Compare", 1, 340)],
        "isAccordionReordered": False,
        "hideEmptyCharts": False,
        "useGroupedValuesInCharts": True,
    }


def view_json(classes: Sequence[str]) -> str:
    """The view as the experiment tag's value."""
    return json.dumps(view_state(classes), sort_keys=True)


def ui_base(tracking_uri: str | None = None) -> str:
    """The UI's address: the tracking server itself (without a user name and password the URI may hold), or
    `mlflow ui`'s default address for a local store."""
    parsed = urllib.parse.urlparse(tracking_uri or mlflow.get_tracking_uri())
    if parsed.scheme not in ("http", "https"):
        return DEFAULT_UI
    host = parsed.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunparse((parsed.scheme, host, parsed.path.rstrip("/"), "", "", ""))


def view_url(experiment_id: str, classes: Sequence[str], tracking_uri: str | None = None) -> str:
    """Where the compare view of `classes` opens, in the model-training mode."""
    query = urllib.parse.urlencode(
        {"viewStateShareKey": view_key(classes), "compareRunsMode": "CHART", **MODEL_TRAINING}
    )
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs?{query}"


def run_url(experiment_id: str, run_id: str, tracking_uri: str | None = None) -> str:
    """A run's page in the model-training mode. The mode holds while the user stays on the run's tabs; the run page's
    links back to the experiment and to a parent run drop it (docs/mlflow.md)."""
    query = urllib.parse.urlencode(MODEL_TRAINING)
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}?{query}"
