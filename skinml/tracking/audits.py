"""An audit in MLflow: its counts as metrics, each finding as a CSV, the page; and read back from a run."""

from __future__ import annotations

import mlflow
import pandas as pd

from skinml.audit.findings import Audit
from skinml.core.names import (
    AUDIT_DUPLICATES_ARTIFACT,
    AUDIT_GROUPS_ARTIFACT,
    AUDIT_MISSED_ARTIFACT,
    AUDIT_PAGE_ARTIFACT,
    AUDIT_SUSPECTS_ARTIFACT,
    LEAKS_ARTIFACT,
)
from skinml.tracking.runs import download_run_artifact


def log_audit(audit: Audit, page: str) -> None:
    """Log `audit` to the active run: counts, duplicates, groups, missed pairs, suspects, the page."""
    mlflow.log_metrics({name: float(value) for name, value in audit.counts().items()})
    mlflow.log_text(audit.duplicates.to_csv(index=False), AUDIT_DUPLICATES_ARTIFACT)
    mlflow.log_text(audit.groups.rename_axis("image_id").to_frame("group").to_csv(), AUDIT_GROUPS_ARTIFACT)
    if audit.grouped:
        mlflow.log_text(audit.missed.to_csv(index=False), AUDIT_MISSED_ARTIFACT)
    if audit.suspects is not None:
        mlflow.log_text(audit.suspects.to_csv(index=False), AUDIT_SUSPECTS_ARTIFACT)
    mlflow.log_text(page, AUDIT_PAGE_ARTIFACT)


def audit_groups(run_id: str) -> pd.DataFrame:
    """The groups (image_id, group) an audit run logged."""
    return pd.read_csv(download_run_artifact(run_id, AUDIT_GROUPS_ARTIFACT), dtype=str, keep_default_na=False)


def log_leaks(leaks: pd.DataFrame, metrics: dict[str, float]) -> None:
    """Log an external evaluation's leaked images (a CSV) and its figures without them to the active run."""
    mlflow.log_metrics(metrics)
    mlflow.log_text(leaks.to_csv(index=False), LEAKS_ARTIFACT)
