"""Split manifests in MLflow: the split stage, logging a manifest with a run, and reading one back from a run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from skinml.config import DEFAULT_EXPERIMENT
from skinml.data.dataset import load_dataset
from skinml.data.split import (
    make_split,
    manifest_digest,
    read_manifest,
    split_keeping_test,
    split_summary,
)
from skinml.data.training_set import data_tags, warn_if_ungrouped
from skinml.mlflow_names import MANIFEST_ARTIFACT, MANIFEST_SHA256_TAG, SPLIT_TAG_PREFIX, TEST_SPLIT_FROM_RUN_TAG
from skinml.tracking import download_run_artifact, log_dataset, log_params_once, stage_run


def log_manifest(manifest: pd.DataFrame, data_dir: str | Path, context: str = "training", *, grouped: bool = True
                 ) -> dict[str, int | str]:
    """Log the split to the active MLflow run: manifest CSV artifact, dataset input, counts and lesion overlap
    (`unknown` for data that names no group: nobody can count lesions it does not name)."""
    summary: dict[str, int | str] = {**split_summary(manifest)}
    if not grouped:
        summary["lesions_crossing_splits"] = "unknown"
    mlflow.log_text(manifest.to_csv(index=False), MANIFEST_ARTIFACT)
    log_dataset(manifest, data_dir, f"{Path(data_dir).resolve().name}-{manifest_digest(manifest)[:12]}", context)
    mlflow.set_tags({MANIFEST_SHA256_TAG: manifest_digest(manifest),
                     **{SPLIT_TAG_PREFIX + k: str(v) for k, v in summary.items()}})  # bookkeeping: tags, not metrics
    return summary


def run_manifest(run_id: str) -> pd.DataFrame:
    """The split manifest a run logged."""
    return read_manifest(download_run_artifact(run_id, MANIFEST_ARTIFACT))


def run_split(data_dir: str | Path, output: str | Path, strategy: str = "grouped", seed: int = 42,
              val_fraction: float = 0.15, test_fraction: float = 0.15, experiment: str = DEFAULT_EXPERIMENT,
              parent_run_id: str | None = None, keep_test_of: str | None = None, data_format: str = "auto",
              label_map: dict[str, str] | None = None) -> dict:
    """The split stage: validate the folder, split it, write the manifest CSV and log it; returns a summary.

    With `keep_test_of` (a run id), the test split that run logged stays as it was (new images of its lesions join
    it) and every other lesion is re-split into train/val: how retraining keeps models comparable. The folder is
    read in `data_format` (recognised when "auto") with its labels mapped by `label_map`.
    """
    name = f"split {strategy} seed={seed}" + (" keeping the champion's test split" if keep_test_of else "")
    # the data is read and split before the run starts: bad data leaves no run behind
    frame = load_dataset(data_dir, data_format=data_format, label_map=label_map)
    warn_if_ungrouped(frame)
    if keep_test_of:
        manifest = split_keeping_test(frame, run_manifest(keep_test_of), val_fraction, seed)
    else:
        manifest = make_split(frame, strategy, val_fraction, test_fraction, seed)
    with stage_run("split", experiment, parent_run_id, name=name) as run:
        log_params_once({"data_dir": str(Path(data_dir).resolve()), "split_strategy": strategy, "seed": seed,
                         "val_fraction": val_fraction, "test_fraction": test_fraction})
        mlflow.log_params({"data_format": frame.attrs.get("data_format", data_format),
                           "grouped_by": frame.attrs.get("grouped_by") or "image"})
        mlflow.set_tags(data_tags(frame, split_made=True))
        if keep_test_of:
            mlflow.set_tag(TEST_SPLIT_FROM_RUN_TAG, keep_test_of)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        manifest.to_csv(output, index=False)
        grouped = frame.attrs.get("grouped_by", "lesion_id") is not None
        summary = log_manifest(manifest, data_dir, grouped=grouped)
        if not grouped:  # say what was done
            strategy = "by image (the data names no lesion or patient)"
        dropped = {label: count for label, count in frame.attrs.get("label_counts_dropped", {}).items() if count}
        return {"run_id": run.info.run_id, "manifest": str(output), "strategy": strategy, **summary,
                "classes": sorted(set(manifest["dx"])), **({"dropped_by_label_map": dropped} if dropped else {})}
