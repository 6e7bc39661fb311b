"""Near-duplicates confirmed: a candidate pair whose matched keypoints agree on one similarity transform (rotation,
scale, shift; RANSAC) at MIN_INLIERS or more; exact duplicates by their pixels."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pandas as pd

from skinml.audit.candidates import candidate_pairs
from skinml.audit.keypoints import Keypoints

MIN_INLIERS = 15  # with MIN_VOTES: link precision 0.96 on HAM10000 (docs/datasets.md)
RATIO = 0.8  # Lowe's ratio test on the two nearest descriptors
SCALES = (0.25, 4.0)  # a zoom outside these is no photograph of the same skin: RANSAC's degenerate fits (all to one)
PAIR_COLUMNS = ["a", "b", "kind", "inliers"]


def inliers(first: Keypoints, second: Keypoints) -> int:
    """How many keypoint matches of two images one similarity transform explains (0 when too few match)."""
    if len(first.descriptors) < 4 or len(second.descriptors) < 4:
        return 0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(first.descriptors, second.descriptors, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < 4:
        return 0
    source = first.points[[m.queryIdx for m in good]]
    target = second.points[[m.trainIdx for m in good]]
    transform, mask = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if transform is None or not SCALES[0] <= float(np.hypot(transform[0, 0], transform[1, 0])) <= SCALES[1]:
        return 0
    return int(mask.sum())


def exact_pairs(pixels: list[str], others: list[str] | None = None) -> np.ndarray:
    """(m, 2) pairs of images with identical pixel digests: within `pixels` each image linked to the first of its
    kind (first < other); with `others`, each image of `pixels` to the first of `others` like it."""
    first: dict[str, int] = {}
    for j, digest in enumerate(others if others is not None else pixels):
        first.setdefault(digest, j)
    pairs = [(first[d], i) if others is None else (i, first[d]) for i, d in enumerate(pixels) if d in first]
    if others is None:
        pairs = [(a, b) for a, b in pairs if a != b]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def confirmed(
    pairs: np.ndarray,
    keypoints: list[Keypoints],
    others: list[Keypoints] | None = None,
    *,
    min_inliers: int = MIN_INLIERS,
) -> pd.DataFrame:
    """The candidate `pairs` whose inliers reach `min_inliers`: columns a, b, kind ('near'), inliers."""
    second = others if others is not None else keypoints
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        counts = np.fromiter(
            pool.map(lambda p: inliers(keypoints[p[0]], second[p[1]]), pairs.tolist(), chunksize=256),
            dtype=np.int64,
            count=len(pairs),
        )
    keep = counts >= min_inliers
    return pd.DataFrame({"a": pairs[keep, 0], "b": pairs[keep, 1], "kind": "near", "inliers": counts[keep]})


def duplicate_pairs(
    keypoints: list[Keypoints], others: list[Keypoints] | None = None, *, min_inliers: int = MIN_INLIERS
) -> pd.DataFrame:
    """Every exact and confirmed near-duplicate pair within `keypoints` (a < b), or between `keypoints` (a) and
    `others` (b): columns a, b, kind ('exact' | 'near'), inliers (-1 for exact pairs)."""
    exact = exact_pairs([k.pixels for k in keypoints], [k.pixels for k in others] if others is not None else None)
    second = others if others is not None else keypoints
    candidates = np.array(  # a pair of identical pixels is exact, whether linked to the first of its kind or not
        [(a, b) for a, b in candidate_pairs(keypoints, others).tolist() if keypoints[a].pixels != second[b].pixels],
        dtype=np.int64,
    ).reshape(-1, 2)
    near = confirmed(candidates, keypoints, others, min_inliers=min_inliers)
    exact_frame = pd.DataFrame({"a": exact[:, 0], "b": exact[:, 1], "kind": "exact", "inliers": -1})
    pairs = pd.concat([exact_frame.astype({"kind": object}), near.astype({"kind": object})], ignore_index=True)
    return (
        pairs[PAIR_COLUMNS]
        .astype({"a": "int64", "b": "int64", "inliers": "int64"})
        .sort_values(["a", "b"], ignore_index=True)
    )
