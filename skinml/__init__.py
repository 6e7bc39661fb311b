"""skinml: train, track, tune, register and serve skin-lesion classifiers on HAM10000."""

import os

CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
"""The 7 HAM10000 diagnostic classes, in the order used everywhere (model outputs, plots, reports)."""

__version__ = "0.1.0"

# MLflow 3.17 starts a telemetry thread at import that, when it cannot send, removes a variable from os.environ while
# requests to a tracking server read os.environ: a sweep worker against deploy/stack died of KeyError
# '_MLFLOW_TELEMETRY_SESSION_ID'. skinml sends no telemetry unless the user's environment asks for it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
