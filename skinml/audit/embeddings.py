"""The audit's embedding of each image: the frozen ImageNet MobileNetV2's pooled features (the baseline's own, read
from the feature cache it shares with training)."""

from __future__ import annotations

import numpy as np

from skinml.core.recipe import AugmentConfig
from skinml.features.cache import FeatureCache
from skinml.features.extraction import extract_features
from skinml.model.network import build_feature_extractor

IMAGE_SIZE = 224


def pooled_features(
    paths: list[str],
    *,
    weights: str = "imagenet",
    image_size: int = IMAGE_SIZE,
    alpha: float = 1.0,
    cache: FeatureCache | None = None,
) -> np.ndarray:
    """(n, 1280) float32 features of the plain images, computed where the cache misses them (a recipe without
    fine-tuning trains on these very entries)."""
    extractor = build_feature_extractor(image_size, weights, alpha)
    features = extract_features(extractor, paths, [0], AugmentConfig(), seed=0, cache=cache)
    return features.load()[:, 0]
