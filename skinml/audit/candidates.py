"""Candidate pairs of near-duplicate images: images that share many similar keypoints.

Every descriptor of every image is indexed (faiss, a binary inverted-file index: Hamming distances); each descriptor
votes for the images owning its nearest descriptors, and a pair with at least MIN_VOTES votes is a candidate. On
HAM10000, pairs with 4 votes or more hold 92 % of the 3,207 same-lesion pairs among 26 k candidates; an ImageNet
embedding's 10 nearest neighbours, 51 % among 82 k (docs/ablation.md §12). The index's search grows as n^1.5 (its
lists grow as the square root of the descriptors).
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
    if not keypoints:
        return np.zeros((0, 32), np.uint8), np.zeros(0, np.int64)
    owners = np.concatenate([np.full(len(k.descriptors), i, dtype=np.int64) for i, k in enumerate(keypoints)])
    return np.ascontiguousarray(np.concatenate([k.descriptors for k in keypoints])), owners


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


def _one_way(askers: list[Keypoints], indexed: list[Keypoints], *, same: bool, seed: int) -> tuple[np.ndarray, ...]:
    """(asking image, indexed image) of every close descriptor neighbour: each descriptor of `askers` against an
    index of every descriptor of `indexed`."""
    index_descriptors, owners = _stacked(indexed)
    queries, asked_by = _stacked(askers)
    if not len(index_descriptors) or not len(queries):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    k = min(NEIGHBOURS + same, len(index_descriptors))  # within one set, a descriptor's nearest is itself
    distances, nearest = _index(index_descriptors, seed).search(queries, k)
    close = (nearest.ravel() >= 0) & (distances.ravel() <= MAX_HAMMING)
    a, b = np.repeat(asked_by, k)[close], owners[np.maximum(nearest.ravel(), 0)][close]
    return (a[a != b], b[a != b]) if same else (a, b)


def votes(keypoints: list[Keypoints], others: list[Keypoints] | None = None, *, seed: int = 0) -> np.ndarray:
    """(m, 3) int64 rows (a, b, votes): pairs of images with at least one vote, a < b within `keypoints`; or, with
    `others`, a indexing `keypoints` and b indexing `others`. A pair's votes count its close descriptor neighbours
    both ways (a's among b's and b's among a's), within one set and across two alike."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    if others is None:
        a, b = _one_way(keypoints, keypoints, same=True, seed=seed)
        a, b = np.minimum(a, b), np.maximum(a, b)
    else:
        forward, backward = (
            _one_way(keypoints, others, same=False, seed=seed),
            _one_way(others, keypoints, same=False, seed=seed),
        )
        a, b = np.concatenate([forward[0], backward[1]]), np.concatenate([forward[1], backward[0]])
    n = len(others if others is not None else keypoints)
    pairs, counts = np.unique(a * n + b, return_counts=True)
    return np.stack([pairs // n, pairs % n, counts], axis=1).astype(np.int64)


def candidate_pairs(
    keypoints: list[Keypoints], others: list[Keypoints] | None = None, *, min_votes: int = MIN_VOTES
) -> np.ndarray:
    """(m, 2) pairs with at least `min_votes` votes (see `votes`)."""
    found = votes(keypoints, others)
    return found[found[:, 2] >= min_votes, :2]
