"""Content-addressed cache of frozen-backbone features.

An entry's key covers the cache version, the image bytes, the feature extractor (architecture, where it is cut,
input size, the settings of its other layers, every weight) and the view (plain, or augmented view k of a given
augmentation and seed). Any change of an ingredient gives a new key; entries are written atomically and carry a
checksum, so a half-written or corrupted entry is never used: it is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skinml import settings
from skinml.config import AugmentConfig

CACHE_VERSION = 3  # part of every key: bump it when what an entry means changes, and older entries are left unused
# (3: JPEGs decoded with the accurate IDCT, skinml.data.loader)
MAGIC = b"SKF1"
HEADER = struct.Struct("<4sI")
CHECKSUM_BYTES = 32
log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """$SKINML_CACHE_DIR, else the user's cache folder (~/.cache/skinml/features)."""
    return settings.user_cache("SKINML_CACHE_DIR", "features")


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
    import keras

    digest = hashlib.sha256()
    backbone = next(layer for layer in extractor.layers if isinstance(layer, keras.Model))
    layers = [[type(layer).__name__, own_config(layer)] for layer in extractor.layers if layer is not backbone]
    digest.update(f"v{CACHE_VERSION}|{backbone.name}|{extractor.input_shape}|{extractor.output_shape}|"
                  f"{json.dumps(layers, sort_keys=True)}".encode())
    for weight in extractor.weights:
        digest.update(weight.path.encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class FeatureCache:
    """Feature vectors on disk, one file per (image, extractor, view) key."""

    root: Path

    @classmethod
    def default(cls) -> FeatureCache:
        return cls(default_cache_dir())

    @staticmethod
    def key(image_digest: str, extractor_fingerprint: str, view: str) -> str:
        return hashlib.sha256(f"{image_digest}|{extractor_fingerprint}|{view}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.feat"

    def get(self, key: str) -> np.ndarray | None:
        """The cached vector, or None when absent, truncated or corrupted (a bad entry is removed)."""
        path = self.path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(blob) >= HEADER.size + CHECKSUM_BYTES:
            magic, dim = HEADER.unpack_from(blob)
            payload, checksum = blob[:-CHECKSUM_BYTES], blob[-CHECKSUM_BYTES:]
            if (magic == MAGIC and len(payload) == HEADER.size + 4 * dim
                    and hashlib.sha256(payload).digest() == checksum):
                return np.frombuffer(payload, dtype="<f4", offset=HEADER.size)
        path.unlink(missing_ok=True)
        return None

    def put(self, key: str, vector: np.ndarray) -> None:
        """Write an entry atomically (temp file + rename): readers see the whole entry or none."""
        vector = np.ascontiguousarray(vector, dtype="<f4")
        payload = HEADER.pack(MAGIC, vector.size) + vector.tobytes()
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload + hashlib.sha256(payload).digest())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def info(self) -> dict[str, int | str]:
        """Where the cache is, how many entries it holds and their total size."""
        files = list(self.root.glob("*/*.feat")) if self.root.exists() else []
        return {"path": str(self.root), "entries": len(files), "bytes": sum(f.stat().st_size for f in files)}

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        count = int(self.info()["entries"])
        if self.root.exists():
            shutil.rmtree(self.root)
        return count


def extract_features(extractor, paths: Sequence[str], views: Sequence[int], augment: AugmentConfig, seed: int,
                     cache: FeatureCache | None = None, batch_size: int = 64, engine: str | None = None,
                     precision: str | None = None) -> np.ndarray:
    """Features of each image for each view, shape (len(paths), len(views), *feature_shape), computed only where not
    cached (the feature shape is the extractor's output: (1280,) pooled, or a feature map such as (7, 7, 160)).

    Each image with a missing view is decoded and resized once; only its missing views go through the backbone, on
    `engine` at `precision` (skinml.engine: OpenVINO on a CPU, TensorFlow on a GPU, f32, by default).
    """
    from skinml.data.augment import augmented_views
    from skinml.data.loader import image_dataset
    from skinml.engine import effective_precision, predictor

    cache = cache or FeatureCache.default()
    precision = effective_precision(engine, precision)
    # f32 features agree across engines to 1e-4, so they share entries; bf16 ones are a different function.
    fingerprint = extractor_fingerprint(extractor) + ("" if precision == "f32" else f"|{precision}")
    digests = [file_digest(p) for p in paths]
    feature_shape = tuple(int(d) for d in extractor.output_shape[1:])
    dim = int(np.prod(feature_shape))
    out = np.zeros((len(paths), len(views), dim), dtype=np.float32)
    keys = [[cache.key(d, fingerprint, view_name(v, augment, seed)) for v in views] for d in digests]
    missing: dict[int, list[int]] = {}  # image index -> indices (into `views`) of its missing views
    for i, image_keys in enumerate(keys):
        for j, key in enumerate(image_keys):
            vector = cache.get(key)
            if vector is None or vector.size != dim:
                missing.setdefault(i, []).append(j)
            else:
                out[i, j] = vector
    todo = sorted(missing)
    log.info("features: %d of %d images need the backbone", len(todo), len(paths))
    if not todo:
        return out.reshape(len(paths), len(views), *feature_shape)
    image_size = int(extractor.input_shape[1])
    run_backbone = predictor(extractor, engine, precision)
    done = 0
    for batch_number, images in enumerate(image_dataset([paths[i] for i in todo], image_size, batch_size)):
        rows = todo[batch_number * batch_size: batch_number * batch_size + len(images)]
        images = images.numpy()
        for j, view in enumerate(views):
            picked = [k for k, row in enumerate(rows) if j in missing[row]]
            if not picked:
                continue
            batch = images[picked]
            if view:
                batch = augmented_views(batch, [digests[rows[k]] for k in picked], augment, seed, view)
            computed = run_backbone(batch).reshape(len(picked), dim)
            for k, vector in zip(picked, computed):
                out[rows[k], j] = vector
                cache.put(keys[rows[k]][j], vector)
        done += len(rows)
        if batch_number % 20 == 19 or done == len(todo):
            log.info("features: %d/%d images computed", done, len(todo))
    return out.reshape(len(paths), len(views), *feature_shape)
