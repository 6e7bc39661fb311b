"""The audit of one data set, computed: duplicate pairs named by image, the groups they imply, the pairs the data's
own groups miss, and the label suspects; with the counts a report and a run state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skinml.audit.duplicates import duplicate_pairs
from skinml.audit.groups import cluster_sizes, merged_groups, missed_duplicates
from skinml.audit.keypoints import Keypoints
from skinml.audit.label_suspects import can_rank, label_suspects, out_of_fold_probabilities
from skinml.data.dataset import names_groups

DUPLICATE_COLUMNS = ["image_a", "image_b", "kind", "inliers", "lesion_a", "lesion_b", "dx_a", "dx_b"]


@dataclass(frozen=True)
class Audit:
    """What the audit found in a data set (frames keyed by image id; `groups`: each image's group after joining
    duplicates, indexed by image id)."""

    grouped: bool
    duplicates: pd.DataFrame
    missed: pd.DataFrame
    groups: pd.Series
    suspects: pd.DataFrame | None

    def counts(self) -> dict[str, int]:
        """The audit's figures, as its run logs them."""
        clusters = cluster_sizes(self.groups)
        counts = {
            "images": len(self.groups),
            "exact_duplicate_pairs": int((self.duplicates["kind"] == "exact").sum()),
            "near_duplicate_pairs": int((self.duplicates["kind"] == "near").sum()),
            "duplicate_pairs_across_labels": int((self.duplicates["dx_a"] != self.duplicates["dx_b"]).sum()),
            "groups": int(self.groups.nunique()),
            "groups_of_several_images": len(clusters),
            "largest_group": int(clusters.max()) if len(clusters) else 1,
        }
        if self.grouped:
            counts["missed_duplicate_pairs"] = len(self.missed)
        if self.suspects is not None:
            counts["label_suspects"] = len(self.suspects)
        return counts


def named_pairs(frame: pd.DataFrame, pairs: pd.DataFrame, other: pd.DataFrame | None = None) -> pd.DataFrame:
    """Index pairs (a into `frame`, b into `other` or `frame`) as image ids with their groups and labels."""
    other = frame if other is None else other
    a, b = frame.iloc[pairs["a"].to_numpy(dtype=int)], other.iloc[pairs["b"].to_numpy(dtype=int)]
    return pd.DataFrame(
        {
            "image_a": a["image_id"].to_numpy(),
            "image_b": b["image_id"].to_numpy(),
            "kind": pairs["kind"].to_numpy(),
            "inliers": pairs["inliers"].to_numpy(),
            "lesion_a": a["lesion_id"].to_numpy(),
            "lesion_b": b["lesion_id"].to_numpy(),
            "dx_a": a["dx"].to_numpy(),
            "dx_b": b["dx"].to_numpy(),
        },
        columns=DUPLICATE_COLUMNS,
    )


def duplicate_groups(
    frame: pd.DataFrame, keypoints: list[Keypoints], *, grouped: bool
) -> tuple[pd.DataFrame, pd.Series]:
    """(the duplicate pairs as index pairs, each image's group with the duplicates joined)."""
    pairs = duplicate_pairs(keypoints)
    return pairs, merged_groups(frame, pairs, grouped=grouped)


def audit_data(
    frame: pd.DataFrame,
    keypoints: list[Keypoints],
    *,
    features: np.ndarray | None = None,
    seed: int = 42,
) -> Audit:
    """The audit of a loaded data set (skinml.data.dataset.load_dataset) from its images' keypoints and, for label
    suspects, their frozen features (None, or fewer than two classes each in two groups: no suspects)."""
    grouped = names_groups(frame)
    frame = frame.reset_index(drop=True)
    pairs, groups = duplicate_groups(frame, keypoints, grouped=grouped)
    named = named_pairs(frame, pairs)
    missed = named_pairs(frame, missed_duplicates(frame, pairs)) if grouped else named.iloc[:0]
    suspects = None
    classes = sorted(set(frame["dx"]))
    labels = pd.Categorical(frame["dx"], categories=classes).codes
    if features is not None and can_rank(labels, groups.to_numpy()):  # else no suspects: nothing to rank them by
        probabilities = out_of_fold_probabilities(features, labels, groups.to_numpy(), seed=seed)
        suspects = label_suspects(frame, probabilities, classes)
    groups = pd.Series(groups.to_numpy(), index=frame["image_id"].to_numpy(), name="group")
    return Audit(grouped=grouped, duplicates=named, missed=missed, groups=groups, suspects=suspects)
