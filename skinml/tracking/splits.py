"""Split manifests in MLflow: logging a manifest with a run, and reading one back from a run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from skinml.core.names import MANIFEST_ARTIFACT, MANIFEST_SHA256_TAG, SPLIT_TAG_PREFIX
from skinml.data.split import manifest_digest, read_manifest, split_summary
from skinml.tracking.runs import download_run_artifact, log_dataset


def log_manifest(
    manifest: pd.DataFrame, data_dir: str | Path, context: str = "training", *, grouped: bool = True
) -> dict[str, int | str]:
    """Log the split to the active MLflow run: manifest CSV artifact, dataset input, counts and lesion overlap
    (`unknown` for data that names no group: nobody can count lesions it does not name)."""
    summary: dict[str, int | str] = {**split_summary(manifest)}
    if not grouped:
        summary["lesions_crossing_splits"] = "unknown"
    mlflow.log_text(manifest.to_csv(index=False), MANIFEST_ARTIFACT)
    log_dataset(manifest, data_dir, f"{Path(data_dir).resolve().name}-{manifest_digest(manifest)[:12]}", context)
    mlflow.set_tags(
        {MANIFEST_SHA256_TAG: manifest_digest(manifest), **{SPLIT_TAG_PREFIX + k: str(v) for k, v in summary.items()}}
    )  # bookkeeping: tags, not metrics
    return summary


def run_manifest(run_id: str) -> pd.DataFrame:
    """The split manifest a run logged."""
    return read_manifest(download_run_artifact(run_id, MANIFEST_ARTIFACT))
