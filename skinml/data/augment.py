"""Augmentation (colour jitter, then rotation, zoom, shift, flips), two ways with the same ranges:

- `augmentation_layers`: Keras preprocessing layers, a fresh random draw every step (backbone in the loop);
- `augmented_views`: a deterministic draw per (image content, seed, view index), so an augmented view can be
  computed once, cached by content, and reused by every epoch, trial and retrain. The colour jitter is applied by
  the same Keras layers, given the drawn factors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np

from skinml.config import AugmentConfig


def saturation_range(saturation: float) -> tuple[float, float]:
    """keras.layers.RandomSaturation's factor range whose saturation multiplier f / (1 - f) spans 1 -+ saturation."""
    return (1 - saturation) / (2 - saturation), (1 + saturation) / (2 + saturation)


def colour_layers(cfg: AugmentConfig, seed: int | None = None) -> list[keras.layers.Layer]:
    """The colour jitter as Keras layers, in keras.layers.RandomColorJitter's order, for images in [0, 255]."""
    layers: list[keras.layers.Layer] = []
    if cfg.brightness:
        layers.append(keras.layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=seed))
    if cfg.contrast:
        layers.append(keras.layers.RandomContrast(cfg.contrast, value_range=(0, 255), seed=seed))
    if cfg.saturation:
        # RandomSaturation clips the saturation channel (a fraction) to value_range: (0, 1) keeps it a fraction;
        # its HSV round trip is scale-free, so the images may stay in [0, 255].
        layers.append(keras.layers.RandomSaturation(saturation_range(cfg.saturation), value_range=(0, 1), seed=seed))
    if cfg.hue:
        layers.append(keras.layers.RandomHue(cfg.hue, value_range=(0, 255), seed=seed))
    return layers


def augmentation_layers(cfg: AugmentConfig, seed: int | None = None) -> keras.Sequential:
    """The on-the-fly augmentation as Keras preprocessing layers (active only in training)."""
    layers = colour_layers(cfg, seed)
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
    fx, fy = (rng.choice([-1.0, 1.0], size=2) if cfg.flip else (1.0, 1.0))
    cos, sin = math.cos(angle), math.sin(angle)
    a = np.array([[cos, -sin], [sin, cos]]) @ np.diag([fx * zoom, fy * zoom])
    cx, cy = (width - 1) / 2, (height - 1) / 2
    offset = np.array([cx, cy]) - a @ np.array([cx, cy]) + np.array([tx, ty])
    return np.array([a[0, 0], a[0, 1], offset[0], a[1, 0], a[1, 1], offset[1], 0.0, 0.0], dtype=np.float32)


def colour_transformations(cfg: AugmentConfig, rng: np.random.Generator) -> list[dict[str, float]]:
    """One draw of colour_layers' transformations, with the distributions those layers draw from."""
    drawn = []
    if cfg.brightness:
        drawn.append({"rgb_delta": rng.uniform(-cfg.brightness, cfg.brightness) * 255})
    if cfg.contrast:
        drawn.append({"contrast_factor": rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)})
    if cfg.saturation:
        factor = rng.uniform(*saturation_range(cfg.saturation))
        drawn.append({"factor": factor / (1 - factor)})
    if cfg.hue:
        drawn.append({"factor": rng.choice([-1.0, 1.0]) * rng.uniform(0, cfg.hue) * 0.5})
    return drawn


def jitter_colours(images: np.ndarray, cfg: AugmentConfig, draws: Sequence[list[dict[str, float]]]) -> np.ndarray:
    """`images` with colour_layers applied, image i getting the transformations `draws[i]`."""
    out = keras.ops.convert_to_tensor(images, dtype="float32")
    batch = len(images)
    for position, layer in enumerate(colour_layers(cfg)):
        (name,) = draws[0][position]
        values = np.array([draw[position][name] for draw in draws], dtype=np.float32)
        shape = (batch,) if isinstance(layer, (keras.layers.RandomSaturation, keras.layers.RandomHue)) \
            else (batch, 1, 1, 1)
        out = layer.transform_images(out, {name: keras.ops.convert_to_tensor(values.reshape(shape))})
    return keras.ops.convert_to_numpy(out)


def augmented_views(images: np.ndarray, image_digests: Sequence[str], cfg: AugmentConfig, seed: int,
                    view: int) -> np.ndarray:
    """View `view` (>= 1) of each image: a transform drawn from (image digest, seed, view) alone."""
    height, width = images.shape[1:3]
    rngs = [np.random.default_rng([int(d[:15], 16), seed, view]) for d in image_digests]
    transforms = np.stack([view_transform(cfg, height, width, rng) for rng in rngs])
    if any(cfg.colour):
        images = jitter_colours(images, cfg, [colour_transformations(cfg, rng) for rng in rngs])
    out = keras.ops.image.affine_transform(images, transforms, interpolation="bilinear", fill_mode="reflect")
    return keras.ops.convert_to_numpy(out)
