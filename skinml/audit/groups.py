"""Groups from duplicates: confirmed pairs joined into clusters (connected components) and merged with the groups
the data names, so that a split never puts one cluster on both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def components(n: int, pairs: pd.DataFrame) -> np.ndarray:
    """Component label of each of n images, the images joined by `pairs` (columns a, b)."""
    a, b = pairs["a"].to_numpy(dtype=np.int64), pairs["b"].to_numpy(dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def merged_groups(frame: pd.DataFrame, pairs: pd.DataFrame, *, grouped: bool = True) -> pd.Series:
    """Each image's group: its `lesion_id` joined with every group a duplicate pair links it to (`grouped=False`:
    the data names no group, each image starts alone). A joined group takes the smallest (sorted) name of those it
    joins; of data without groups, 'duplicates-of-<smallest image_id>'."""
    start = frame["lesion_id"] if grouped else frame["image_id"]
    codes, names = pd.factorize(start, sort=True)
    links = pd.DataFrame({"a": codes[pairs["a"].to_numpy(dtype=int)], "b": codes[pairs["b"].to_numpy(dtype=int)]})
    joined = components(len(names), links)
    first = pd.Series(names).groupby(joined).transform("first").to_numpy()
    size = pd.Series(names).groupby(joined).transform("size").to_numpy()
    renamed = first
    if not grouped:
        renamed = np.where(size > 1, np.char.add("duplicates-of-", first.astype(str)), names.astype(str))
    return pd.Series(np.asarray(renamed, dtype=object)[codes], index=frame.index, name="lesion_id")


def missed_duplicates(frame: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """The duplicate pairs whose images the data puts in two different groups (lesion ids)."""
    groups = frame["lesion_id"].to_numpy()
    return pairs[groups[pairs["a"].to_numpy(dtype=int)] != groups[pairs["b"].to_numpy(dtype=int)]]


def joined_groups(original: pd.Series, joined: pd.Series) -> int:
    """How many groups of `joined` hold more than one group of `original` (both indexed alike): the groups the
    duplicates made (of data without groups, `original` is each image's own id)."""
    return int((original.groupby(joined.to_numpy()).nunique() > 1).sum())


def cluster_sizes(groups: pd.Series) -> pd.Series:
    """Size of each group of more than one image, largest first."""
    sizes = groups.value_counts()
    return sizes[sizes > 1]
