"""Prefect flows: orchestration of the skinml stages (no ML logic here)."""

import skinml  # noqa: F401  first: a flow run a Prefect worker starts has every telemetry off before MLflow loads
from flows.run_logs import send_skinml_logs_to_prefect  # after skinml: see above

send_skinml_logs_to_prefect()
