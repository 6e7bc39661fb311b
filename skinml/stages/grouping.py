"""The split's groups joined by duplicates: for data that names no group (an image folder, a CSV without a group
column), the confirmed near-duplicate clusters become the groups; for data that names them, `merge` joins the
groups a duplicate pair links."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import pandas as pd

from skinml.audit.findings import duplicate_groups
from skinml.audit.groups import cluster_sizes, joined_groups
from skinml.audit.keypoints import all_keypoints
from skinml.core.errors import DataError
from skinml.core.recipe import TrainConfig
from skinml.data.dataset import names_groups
from skinml.tracking.audits import audit_groups

log = logging.getLogger("skinml.audit")


def needs_duplicate_groups(frame: pd.DataFrame, merge: bool) -> bool:
    """Whether the split groups `frame` by duplicates: it names no group, or `merge` asks."""
    return merge or not names_groups(frame)


def regrouped(frame: pd.DataFrame, *, merge: bool = False, audit_run_id: str | None = None) -> pd.DataFrame:
    """`frame` with `lesion_id` holding the groups joined by duplicates where `needs_duplicate_groups` (the groups
    an audit run logged when given, else found here: a minute for 10,000 images), and attrs `duplicate_groups`: how
    many groups the duplicates joined. Else `frame` as it is."""
    if not needs_duplicate_groups(frame, merge):
        return frame
    grouped = names_groups(frame)
    if audit_run_id:
        logged = audit_groups(audit_run_id).set_index("image_id")["group"]
        groups = frame["image_id"].map(logged)
        if groups.isna().any():
            lost = frame.loc[groups.isna().to_numpy(), "image_id"].head(5).tolist()
            raise DataError(f"audit run {audit_run_id} has no group for {int(groups.isna().sum())} image(s): {lost}")
    else:
        log.info("finding near-duplicates among %d images to group the split", len(frame))
        _, groups = duplicate_groups(frame, all_keypoints(frame["path"].tolist()), grouped=grouped)
    start = frame["lesion_id"] if grouped else frame["image_id"]
    several = joined_groups(start.reset_index(drop=True), groups.reset_index(drop=True))
    log.info(
        "split groups: near-duplicates joined %d groups of %s (%d of %d images in groups of several)",
        several,
        "the data's" if grouped else "one image",
        int(cluster_sizes(groups).sum()),
        len(frame),
    )
    joined = frame.assign(lesion_id=groups.to_numpy())
    joined.attrs = {**frame.attrs, "duplicate_groups": several}
    return joined


def regroup_for(config: TrainConfig) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The `regroup` a training split takes for `config` (skinml.data.training_set.labelled_split)."""
    return partial(regrouped, merge=config.merge_near_duplicates)
