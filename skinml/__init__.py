"""skinml: train, track, tune, register and serve skin-lesion classifiers on HAM10000."""

CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
"""The 7 HAM10000 diagnostic classes, in the order used everywhere (model outputs, plots, reports)."""

__version__ = "0.1.0"

# Before any dependency starts: none of them sends usage data unless the user opts in (skinml/privacy.py). MLflow's
# telemetry thread, when it cannot send, also removed a variable from os.environ that requests to a tracking server
# read: a sweep worker against deploy/stack died of KeyError '_MLFLOW_TELEMETRY_SESSION_ID'.
from skinml.privacy import turn_off_telemetry  # noqa: E402

turn_off_telemetry()
