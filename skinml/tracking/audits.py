"""An audit in MLflow: its counts as metrics, each finding as a CSV, the page; and read back from a run."""

from __future__ import annotations

import mlflow
import pandas as pd

from skinml.audit.findings import Audit
from skinml.core.names import AUDIT_GROUPS_ARTIFACT, LEAKS_ARTIFACT
from skinml.tracking.runs import download_run_artifact


def log_audit(audit: Audit, files: dict[str, str]) -> None:
    """Log `audit` to the active run: its counts as metrics, its files (report.finding_files) as artifacts."""
    mlflow.log_metrics({name: float(value) for name, value in audit.counts().items()})
    for path, text in files.items():
        mlflow.log_text(text, path)


def audit_groups(run_id: str) -> pd.DataFrame:
    """The groups (image_id, group) an audit run logged."""
    return pd.read_csv(download_run_artifact(run_id, AUDIT_GROUPS_ARTIFACT), dtype=str, keep_default_na=False)


def log_leaks(leaks: pd.DataFrame, metrics: dict[str, float]) -> None:
    """Log an external evaluation's leaked images (a CSV) and its figures without them to the active run."""
    mlflow.log_metrics(metrics)
    mlflow.log_text(leaks.to_csv(index=False), LEAKS_ARTIFACT)
