"""The baseline's augmentation (rotation, zoom, shift, flips), two ways with the same ranges:

- `augmentation_layers`: Keras preprocessing layers, a fresh random draw every step (backbone in the loop);
- `augmented_views`: a deterministic draw per (image content, seed, view index), so an augmented view can be
  computed once, cached by content, and reused by every epoch, trial and retrain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np

from skinml.core.recipe import AugmentConfig


def augmentation_layers(cfg: AugmentConfig, seed: int | None = None) -> keras.Sequential:
    """The on-the-fly augmentation as Keras preprocessing layers (active only in training)."""
    layers: list[keras.layers.Layer] = []
    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal_and_vertical", seed=seed))
    if cfg.rotation:
        layers.append(keras.layers.RandomRotation(cfg.rotation, fill_mode="reflect", seed=seed))
    if cfg.zoom:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="reflect", seed=seed))
    if cfg.shift:
        layers.append(keras.layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode="reflect", seed=seed))
    return keras.Sequential(layers, name="augmentation")


def view_transform(cfg: AugmentConfig, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One random affine transform (the 8-vector of keras.ops.image.affine_transform, output -> input)."""
    angle = rng.uniform(-cfg.rotation, cfg.rotation) * 2 * math.pi
    zoom = 1.0 + rng.uniform(-cfg.zoom, cfg.zoom)
    tx = rng.uniform(-cfg.shift, cfg.shift) * width
    ty = rng.uniform(-cfg.shift, cfg.shift) * height
    fx, fy = rng.choice([-1.0, 1.0], size=2) if cfg.flip else (1.0, 1.0)
    cos, sin = math.cos(angle), math.sin(angle)
    a = np.array([[cos, -sin], [sin, cos]]) @ np.diag([fx * zoom, fy * zoom])
    cx, cy = (width - 1) / 2, (height - 1) / 2
    offset = np.array([cx, cy]) - a @ np.array([cx, cy]) + np.array([tx, ty])
    return np.array([a[0, 0], a[0, 1], offset[0], a[1, 0], a[1, 1], offset[1], 0.0, 0.0], dtype=np.float32)


def augmented_views(
    images: np.ndarray, image_digests: Sequence[str], cfg: AugmentConfig, seed: int, view: int
) -> np.ndarray:
    """View `view` (>= 1) of each image: a transform drawn from (image digest, seed, view) alone."""
    height, width = images.shape[1:3]
    rngs = [np.random.default_rng([int(d[:15], 16), seed, view]) for d in image_digests]
    transforms = np.stack([view_transform(cfg, height, width, rng) for rng in rngs])
    out = keras.ops.image.affine_transform(images, transforms, interpolation="bilinear", fill_mode="reflect")
    return keras.ops.convert_to_numpy(out)
