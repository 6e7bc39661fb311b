"""skinml: train, track, tune, register and serve skin-lesion classifiers on HAM10000 or any labelled image set;
a model's classes come from its training data (skinml.core.labels)."""

__version__ = "0.1.0"

# Before any dependency starts: none of them sends usage data unless the user opts in (skinml/core/privacy.py). Also,
# MLflow's telemetry thread, when it cannot send, removes a variable from os.environ that requests to a tracking
# server read (KeyError '_MLFLOW_TELEMETRY_SESSION_ID' in a process that talks to one).
from skinml.core.privacy import turn_off_telemetry  # noqa: E402

turn_off_telemetry()
