"""Grad-CAM (Selvaraju et al., 2017) heat-maps at MobileNetV2's last convolutional feature map.

The class score is the pre-softmax logit of the final Dense layer; the map is ReLU(sum_k alpha_k A_k) with alpha_k
the spatial mean of d(score)/dA_k, upsampled to the input size and scaled to [0, 1] per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from skinml.core.recipe import AugmentConfig
from skinml.features.cache import FeatureCache
from skinml.features.extraction import extract_features
from skinml.model.network import split_classifier

POOL = "pool"  # the GlobalAveragePooling2D after the last feature map, in the extractor or in the head


def feature_maps(classifier: keras.Model, paths: Sequence[str], cache: FeatureCache | None = None) -> np.ndarray:
    """The last convolutional feature map (n, h, w, 1280) of each image. Its frozen part comes from the feature cache
    (computed there when absent, like any feature): the whole backbone's map when the backbone is frozen, else the
    map at the cut, the entries prediction uses, then the fine-tuned top."""
    extractor, head, _ = split_classifier(classifier)
    if any(layer.name == POOL for layer in extractor.layers):  # the whole backbone is frozen
        # a few images: TensorFlow's first call costs less than converting this model for OpenVINO (0.6 s vs 1.3 s)
        to_map = keras.Model(extractor.input, extractor.get_layer(POOL).input)
        return extract_features(
            to_map, paths, [0], AugmentConfig(), seed=0, cache=cache, engine="tensorflow", precision="f32"
        ).load()[:, 0]
    cut = extract_features(extractor, paths, [0], AugmentConfig(), seed=0, cache=cache).load()[:, 0]
    head_map = keras.Model(head.input, head.get_layer(POOL).input)
    return keras.ops.convert_to_numpy(head_map(cut))


def grad_cam(classifier: keras.Model, maps: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Heat-maps (n, height, width) in [0, 1], at the model's input size, of `classes[i]` for each image, from its
    last convolutional feature map (feature_maps)."""
    dense = classifier.get_layer("head").get_layer("probs")
    maps = tf.convert_to_tensor(maps)
    with tf.GradientTape() as tape:
        tape.watch(maps)
        logits = tf.matmul(tf.reduce_mean(maps, axis=(1, 2)), dense.kernel) + dense.bias
        scores = tf.gather(logits, tf.convert_to_tensor(classes, dtype=tf.int32), axis=1, batch_dims=1)
    alphas = tf.reduce_mean(tape.gradient(scores, maps), axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(alphas * maps, axis=-1))[..., None]
    cams = tf.image.resize(cams, classifier.input_shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cams.reshape(len(cams), -1).max(axis=1)[:, None, None]
    return np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0)


def fixed_sample(data: pd.DataFrame, per_class: int, classes: Sequence[str], seed: int = 0) -> pd.DataFrame:
    """The same `per_class` images of each of `classes` for any model evaluated on this set (chosen by image id)."""
    picked = []
    for name in classes:
        ids = np.sort(data.loc[data["dx"] == name, "image_id"].to_numpy())
        if len(ids):
            chosen = np.random.default_rng(seed).choice(ids, size=min(per_class, len(ids)), replace=False)
            picked.append(data[data["image_id"].isin(chosen)].sort_values("image_id"))
    return pd.concat(picked) if picked else data.iloc[:0]
