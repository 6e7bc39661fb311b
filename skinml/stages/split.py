"""The split stage: a data folder validated and split (lesion-grouped by default), its manifest written and logged."""

from __future__ import annotations

from pathlib import Path

import mlflow

from skinml.core.names import AUDIT_RUN_ID_TAG, TEST_SPLIT_FROM_RUN_TAG
from skinml.core.run_context import RunContext
from skinml.data.dataset import load_dataset, names_groups
from skinml.data.split import make_split, split_keeping_test
from skinml.data.tables import without_images
from skinml.data.training_set import data_tags, warn_if_ungrouped
from skinml.stages.grouping import regrouped
from skinml.tracking.runs import log_params_once, stage_run
from skinml.tracking.splits import log_manifest, run_manifest


def run_split(
    data_dir: str | Path,
    output: str | Path,
    strategy: str = "grouped",
    *,
    seed: int = 42,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    context: RunContext = RunContext(),
    keep_test_of: str | None = None,
    data_format: str = "auto",
    label_map: dict[str, str] | None = None,
    merge_near_duplicates: bool = False,
    audit_run_id: str | None = None,
    exclude_images: tuple[str, ...] = (),
) -> dict:
    """The split stage: validate the folder, split it, write the manifest CSV and log it; returns a summary.

    With `keep_test_of` (a run id), the test split that run logged stays as it was (new images of its lesions join
    it) and every other lesion is re-split into train/val: how retraining keeps models comparable. The folder is
    read in `data_format` (recognised when "auto") with its labels mapped by `label_map`. Data that names no group is
    split by near-duplicate groups, and so is data that does with `merge_near_duplicates` (skinml.stages.grouping;
    the groups of `audit_run_id` when given). The images `exclude_images` names are left out.
    """
    name = f"split {strategy} seed={seed}" + (" keeping the champion's test split" if keep_test_of else "")
    # the data is read and split before the run starts: bad data leaves no run behind
    frame = without_images(load_dataset(data_dir, data_format=data_format, label_map=label_map), exclude_images)
    if strategy == "grouped":
        frame = regrouped(frame, merge=merge_near_duplicates, audit_run_id=audit_run_id)
    warn_if_ungrouped(frame)
    if keep_test_of:
        manifest = split_keeping_test(frame, run_manifest(keep_test_of), val_fraction, seed)
    else:
        manifest = make_split(frame, strategy, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    with stage_run("split", context, name=name) as run:
        log_params_once(
            {
                "data_dir": str(Path(data_dir).resolve()),
                "split_strategy": strategy,
                "seed": seed,
                "val_fraction": val_fraction,
                "test_fraction": test_fraction,
            }
        )
        mlflow.log_params(
            {
                "data_format": frame.attrs.get("data_format", data_format),
                "grouped_by": frame.attrs.get("grouped_by") or "image",
            }
        )
        mlflow.set_tags(data_tags(frame, split_made=True))
        if keep_test_of:
            mlflow.set_tag(TEST_SPLIT_FROM_RUN_TAG, keep_test_of)
        if audit_run_id:
            mlflow.set_tag(AUDIT_RUN_ID_TAG, audit_run_id)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        manifest.to_csv(output, index=False)
        grouped = names_groups(frame)
        summary = log_manifest(manifest, data_dir, grouped=grouped)
        duplicate_groups = frame.attrs.get("duplicate_groups")
        if duplicate_groups is not None:  # say what was done
            strategy += (
                f", {duplicate_groups} of the data's groups joined by near-duplicates"
                if grouped
                else f", the data names no group: {duplicate_groups} groups of near-duplicates"
            )
        elif not grouped:
            strategy = "by image (the data names no lesion or patient)"
        dropped = {label: count for label, count in frame.attrs.get("label_counts_dropped", {}).items() if count}
        return {
            "run_id": run.info.run_id,
            "manifest": str(output),
            "strategy": strategy,
            **summary,
            "classes": sorted(set(manifest["dx"])),
            **({"dropped_by_label_map": dropped} if dropped else {}),
        }
