"""Batches of cached features for Keras, read from disk a batch at a time, so that training's memory does not grow
with the number of images: the feature cache (skinml.features.extraction.CachedFeatures), or a scratch file of
rows (RowFile, the frozen top's pooled output). Only indices are shuffled in memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf


class Rows(Protocol):
    """Features of images x views, read by row: shape (n, views, *feature_shape)."""

    shape: tuple[int, ...]

    def read(self, rows: np.ndarray, views: np.ndarray | int = 0) -> np.ndarray: ...


class RowFile:
    """Float32 rows of shape (n, views, *feature_shape) in a scratch file, written in order and read by index with
    positioned reads (no memory map: its pages would count as the process's memory)."""

    def __init__(self, path: str | Path, shape: tuple[int, ...]):
        self.path, self.shape = Path(path), tuple(shape)
        self.row_values = int(np.prod(self.shape[2:]))
        self._handle = open(self.path, "wb+")

    def append(self, values: np.ndarray) -> None:
        """Rows (image, view) in order, flattened: the next len(values) of n * views."""
        self._handle.write(np.ascontiguousarray(values, dtype="<f4").tobytes())
        self._handle.flush()

    def read(self, rows: np.ndarray, views: np.ndarray | int = 0) -> np.ndarray:
        rows = np.asarray(rows)
        flat = rows * self.shape[1] + np.broadcast_to(views, rows.shape)
        size = 4 * self.row_values
        out = np.empty((len(flat), self.row_values), dtype=np.float32)
        for k, position in enumerate(flat):
            out[k] = np.frombuffer(os.pread(self._handle.fileno(), size, int(position) * size), dtype="<f4")
        return out.reshape(len(flat), *self.shape[2:])

    def close(self) -> None:
        self._handle.close()


def read_rows(source: Rows | np.ndarray, rows: np.ndarray, views: np.ndarray | int = 0) -> np.ndarray:
    """Rows of an in-memory array (n, views, ...) or of a Rows source."""
    if isinstance(source, np.ndarray):
        return source[rows, views]
    return source.read(rows, views)


def keras_fit_order(n: int) -> np.ndarray:
    """The order in which `Model.fit(arrays, shuffle=True)` visits n samples: one `tf.random.shuffle` of the
    indices in a tf.data map under the global seed (keras.src.trainers.data_adapters.array_data_adapter), drawn the
    same way here, so that streamed batches are the batches Keras made from arrays in memory (tests/unit/test_batches.py
    holds the two to each other)."""
    indices = tf.data.Dataset.range(1).map(lambda _: tf.random.shuffle(tf.range(n, dtype=tf.int64)))
    return next(iter(indices)).numpy()


class TrainingBatches(keras.utils.PyDataset):
    """(features, targets) batches: image order[k] with its view views[order[k]], `batch_size` at a time."""

    def __init__(
        self, source: Rows | np.ndarray, targets: np.ndarray, views: np.ndarray, order: np.ndarray, batch_size: int
    ):
        super().__init__()
        self.source, self.targets, self.views, self.order, self.batch_size = source, targets, views, order, batch_size

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return read_rows(self.source, rows, self.views[rows]), self.targets[rows]


class PredictionBatches(keras.utils.PyDataset):
    """Features of view 0 of every image in order, `batch_size` at a time, for `Model.predict`."""

    def __init__(self, source: Rows | np.ndarray, batch_size: int):
        super().__init__()
        self.source, self.batch_size, self.n = source, batch_size, int(source.shape[0])

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __getitem__(self, index: int) -> np.ndarray:
        rows = np.arange(index * self.batch_size, min((index + 1) * self.batch_size, self.n))
        return read_rows(self.source, rows, 0)
