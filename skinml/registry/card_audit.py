"""The model card's audit section: what the audit of the model's training data found, from the audit run of the
pipeline that trained it (or where to get one)."""

from __future__ import annotations

import mlflow

from skinml.core.names import AUDIT_PAGE_ARTIFACT, DUPLICATE_GROUPS_TAG, STAGE_TAG

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own


def sibling(train_run, stage: str):
    """The `stage` run beside `train_run` under one pipeline run (None: trained alone, or no such stage)."""
    parent = train_run.data.tags.get(PARENT_TAG)
    if not parent:
        return None
    found = mlflow.search_runs(
        experiment_ids=[train_run.info.experiment_id],
        filter_string=f"tags.{PARENT_TAG} = '{parent}' and tags.`{STAGE_TAG}` = '{stage}'",
        output_format="list",
    )
    return found[0] if found else None


def audit_section(train_run) -> list[str]:
    """Markdown lines: the audit's counts and where its page is, or how to audit the data."""
    audit = sibling(train_run, "audit")
    if audit is None:
        return [
            "Not audited with this model: `skinml audit --data-dir DIR` lists its duplicates, the groups they imply and"
            " its label suspects (docs/datasets.md).",
        ]
    counts = {name: int(value) for name, value in audit.data.metrics.items()}
    found = [
        f"{counts.get('exact_duplicate_pairs', 0)} exact and {counts.get('near_duplicate_pairs', 0)} near-duplicate "
        f"pairs of images, {counts.get('duplicate_pairs_across_labels', 0)} of them under two labels"
    ]
    if "missed_duplicate_pairs" in counts:
        found.append(f"{counts['missed_duplicate_pairs']} pairs under two group ids")
    if "label_suspects" in counts:
        found.append(f"{counts['label_suspects']} label suspects (confident learning; labels not edited)")
    lines = [f"Audit run `{audit.info.run_id}` (page `{AUDIT_PAGE_ARTIFACT}`): {'; '.join(found)}."]
    split = sibling(train_run, "split") or train_run
    grouped = split.data.tags.get(DUPLICATE_GROUPS_TAG)
    if grouped is not None:
        lines.append(f"The split kept each of {grouped} groups the near-duplicates joined on one side.")
    return lines
