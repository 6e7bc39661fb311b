"""Candidate pairs of near-duplicate images: images that share many similar keypoints.

Every descriptor of every image is indexed (faiss, a binary inverted-file index: Hamming distances); each descriptor
votes for the images owning its nearest descriptors, and a pair with at least MIN_VOTES votes is a candidate. On
HAM10000 this retrieves 92 % of the 3,207 same-lesion pairs among 26 k candidates; an ImageNet embedding's 10
nearest neighbours retrieve 51 % among 82 k (docs/datasets.md). The index's search grows as n^1.5 (its lists grow
as the square root of the descriptors).
"""

from __future__ import annotations

import math
import os

import faiss
import numpy as np

from skinml.audit.keypoints import Keypoints

NEIGHBOURS = 4  # nearest descriptors each descriptor votes for
MAX_HAMMING = 40  # of 256 bits: a vote only for a close descriptor (ORB's own matching threshold is about 50)
MIN_VOTES = 5


def _stacked(keypoints: list[Keypoints]) -> tuple[np.ndarray, np.ndarray]:
    owners = np.concatenate([np.full(len(k.descriptors), i, dtype=np.int64) for i, k in enumerate(keypoints)])
    descriptors = np.concatenate([k.descriptors for k in keypoints]) if keypoints else np.zeros((0, 32), np.uint8)
    return np.ascontiguousarray(descriptors), owners


def _index(descriptors: np.ndarray, seed: int) -> faiss.IndexBinary:
    if len(descriptors) < 10_000:  # too few to train an inverted file: compare with every descriptor
        index = faiss.IndexBinaryFlat(256)
    else:
        lists = 2 ** round(math.log2(math.sqrt(len(descriptors))))
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(256), 256, lists)
        sample = np.random.default_rng(seed).choice(len(descriptors), min(len(descriptors), 40 * lists), replace=False)
        index.train(descriptors[np.sort(sample)])
        index.nprobe = 1
    index.add(descriptors)
    return index


def votes(
    keypoints: list[Keypoints], others: list[Keypoints] | None = None, *, seed: int = 0, threads: int | None = None
) -> np.ndarray:
    """(m, 3) int64 rows (a, b, votes): pairs of images with at least one vote, a < b within `keypoints`; or, with
    `others`, a indexing `keypoints` and b indexing `others` (pairs across two sets)."""
    faiss.omp_set_num_threads(threads or os.cpu_count() or 1)
    indexed, owners = _stacked(others if others is not None else keypoints)
    queries, askers = _stacked(keypoints)
    if not len(indexed) or not len(queries):
        return np.zeros((0, 3), np.int64)
    index = _index(indexed, seed)
    k = min(NEIGHBOURS + (others is None), len(indexed))  # within one set, a descriptor's nearest is itself
    distances, nearest = index.search(queries, k)
    a = np.repeat(askers, k)
    b = owners[np.maximum(nearest.ravel(), 0)]
    close = (nearest.ravel() >= 0) & (distances.ravel() <= MAX_HAMMING)
    if others is None:
        close &= a != b
        a, b = np.minimum(a, b), np.maximum(a, b)
    n = len(others if others is not None else keypoints)
    pairs, counts = np.unique(a[close] * n + b[close], return_counts=True)
    return np.stack([pairs // n, pairs % n, counts], axis=1)


def candidate_pairs(
    keypoints: list[Keypoints], others: list[Keypoints] | None = None, *, min_votes: int = MIN_VOTES
) -> np.ndarray:
    """(m, 2) pairs with at least `min_votes` votes (see `votes`)."""
    found = votes(keypoints, others)
    return found[found[:, 2] >= min_votes, :2]
