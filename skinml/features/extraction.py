"""Frozen-backbone features through the content-addressed cache (skinml.features.cache stores them).

An entry's key covers the cache version, the image bytes, the feature extractor (architecture, where it is cut,
input size, the settings of its other layers, every weight) and the view (plain, or augmented view k of a given
augmentation and seed). Any change of an ingredient gives a new key; an absent, half-written or corrupted entry is
recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skinml.core.recipe import AugmentConfig
from skinml.features.cache import FeatureCache

CACHE_VERSION = 3  # part of every key: bump it when what an entry means changes, and older entries are left unused
log = logging.getLogger("skinml.features")  # the package: the name users see on its lines


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def view_name(view: int, augment: AugmentConfig, seed: int) -> str:
    """Stable description of a view: 0 is the plain image, k >= 1 an augmented view."""
    return "plain" if view == 0 else f"aug[{augment.describe()}]seed={seed}/view={view}"


def own_config(layer) -> dict:
    """A layer's settings beyond those every layer has (name, trainable, dtype)."""
    return {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable", "dtype")}


def extractor_fingerprint(extractor) -> str:
    """sha256 over the cache version, the backbone (and where it is cut), the input and output shapes, the settings
    of every other layer of the extractor (preprocessing, pooling) and every weight: the cache's model key."""
    # lazy: TensorFlow and the engines load when features are computed, not on import
    import keras

    digest = hashlib.sha256()
    backbone = next(layer for layer in extractor.layers if isinstance(layer, keras.Model))
    layers = [[type(layer).__name__, own_config(layer)] for layer in extractor.layers if layer is not backbone]
    digest.update(
        f"v{CACHE_VERSION}|{backbone.name}|{extractor.input_shape}|{extractor.output_shape}|"
        f"{json.dumps(layers, sort_keys=True)}".encode()
    )
    for weight in extractor.weights:
        digest.update(weight.path.encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


class CachedFeatures:
    """Features of images x views held in the cache, read a batch of rows at a time: training streams from it, so
    memory does not grow with the number of images."""

    def __init__(self, cache: FeatureCache, keys: np.ndarray, feature_shape: tuple[int, ...]):
        self.cache, self.keys, self.feature_shape = cache, keys, feature_shape

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.keys.shape, *self.feature_shape)

    def read(self, rows: np.ndarray, views: np.ndarray | int = 0) -> np.ndarray:
        """(len(rows), *feature_shape): the feature of view views[k] of image rows[k]."""
        keys = self.keys[np.asarray(rows), np.broadcast_to(views, np.shape(rows))]
        found = self.cache.get_many(keys.tolist())
        if len(found) < len(set(keys)):
            lost = next(key for key in keys if key not in found)
            raise RuntimeError(
                f"feature cache entry {lost} in {self.cache.root} vanished or was corrupted while "
                "in use (was the cache cleared?): run the command again to recompute it"
            )
        return np.stack([found[key] for key in keys]).reshape(len(keys), *self.feature_shape)

    def load(self) -> np.ndarray:
        """All of it in memory, shape (n, views, *feature_shape): for small sets and tests."""
        rows, views = np.indices(self.keys.shape)
        return self.read(rows.ravel(), views.ravel()).reshape(self.shape)


def missing_entries(cache: FeatureCache, keys: np.ndarray, dim: int, chunk: int = 256) -> dict[int, list[int]]:
    """image index -> indices of its views whose entry is absent, corrupted or of another size (read in chunks:
    checked, not kept)."""
    flat = keys.ravel().tolist()
    missing: dict[int, list[int]] = {}
    for start in range(0, len(flat), chunk):
        found = cache.get_many(flat[start : start + chunk])
        for position in range(start, min(start + chunk, len(flat))):
            vector = found.get(flat[position])
            if vector is None or vector.size != dim:
                missing.setdefault(position // keys.shape[1], []).append(position % keys.shape[1])
    return missing


def extract_features(
    extractor,
    paths: Sequence[str],
    views: Sequence[int],
    augment: AugmentConfig,
    seed: int,
    cache: FeatureCache | None = None,
    *,
    batch_size: int = 64,
    engine: str | None = None,
    precision: str | None = None,
) -> CachedFeatures:
    """Features of each image for each view, shape (len(paths), len(views), *feature_shape), computed only where not
    cached (the feature shape is the extractor's output: (1280,) pooled, or a feature map such as (7, 7, 160)), and
    returned as a handle on the cache.

    Each image with a missing view is decoded and resized once; only its missing views go through the backbone, on
    `engine` at `precision` (skinml.model.engine: OpenVINO on a CPU, TensorFlow on a GPU, f32, by default).
    """
    # lazy: TensorFlow and the engines load when features are computed, not on import
    from skinml.data.augment import augmented_views
    from skinml.data.loader import image_dataset
    from skinml.model.engine import effective_precision, predictor

    cache = cache or FeatureCache.default()
    precision = effective_precision(engine, precision)
    # f32 features agree across engines to 1e-4, so they share entries; bf16 ones are a different function.
    fingerprint = extractor_fingerprint(extractor) + ("" if precision == "f32" else f"|{precision}")
    digests = [file_digest(p) for p in paths]
    feature_shape = tuple(int(d) for d in extractor.output_shape[1:])
    dim = int(np.prod(feature_shape))
    keys = np.array(
        [[cache.key(d, fingerprint, view_name(v, augment, seed)) for v in views] for d in digests], dtype=object
    ).reshape(len(paths), len(views))
    features = CachedFeatures(cache, keys, feature_shape)
    missing = missing_entries(cache, keys, dim)  # image index -> indices (into `views`) of its missing views
    todo = sorted(missing)
    log.info("features: %d of %d images need the backbone", len(todo), len(paths))
    if not todo:
        return features
    image_size = int(extractor.input_shape[1])
    run_backbone = predictor(extractor, engine, precision)
    done = 0
    for batch_number, images in enumerate(image_dataset([paths[i] for i in todo], image_size, batch_size)):
        rows = todo[batch_number * batch_size : batch_number * batch_size + len(images)]
        images = images.numpy()
        for j, view in enumerate(views):
            picked = [k for k, row in enumerate(rows) if j in missing[row]]
            if not picked:
                continue
            batch = images[picked]
            if view:
                batch = augmented_views(batch, [digests[rows[k]] for k in picked], augment, seed, view)
            computed = run_backbone(batch).reshape(len(picked), dim)
            cache.put_many({keys[rows[k], j]: vector for k, vector in zip(picked, computed)})
        done += len(rows)
        if batch_number % 20 == 19 or done == len(todo):
            log.info("features: %d/%d images computed", done, len(todo))
    return features
