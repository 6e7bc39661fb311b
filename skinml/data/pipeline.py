"""tf.data input pipeline: parallel decode, resize once, batch, prefetch. Works the same on CPU and GPU."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """JPEG/PNG bytes -> float32 (image_size, image_size, 3) in [0, 255], bilinear resize."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    return tf.ensure_shape(image, (image_size, image_size, 3))


def image_dataset(paths: Sequence[str], image_size: int, batch_size: int, labels=None,
                  shuffle_seed: int | None = None, balance_classes: Sequence[int] | None = None) -> tf.data.Dataset:
    """Batches of decoded, resized images (and labels, when given) read from `paths`.

    In order, unless `shuffle_seed` is given: then reshuffled every epoch (for training). With `balance_classes`
    (each path's class), every epoch instead draws as many images with replacement, each class equally likely
    (seeded by `shuffle_seed`, 0 when not given).
    """
    files = tf.data.Dataset.from_tensor_slices(tf.constant(list(paths), dtype=tf.string))
    if labels is not None:
        files = tf.data.Dataset.zip(files, tf.data.Dataset.from_tensor_slices(labels))
    if balance_classes is not None:
        files = class_balanced(files, balance_classes, shuffle_seed or 0)
    elif shuffle_seed is not None:
        files = files.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)

    def load(path, *label):
        image = decode_and_resize(tf.io.read_file(path), image_size)
        return (image, *label) if label else image

    images = files.map(load, num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return images.batch(batch_size).prefetch(AUTOTUNE).with_options(options)


def class_balanced(elements: tf.data.Dataset, classes: Sequence[int], seed: int) -> tf.data.Dataset:
    """len(classes) elements drawn with replacement, each class (classes[i] is element i's) equally likely; a new
    draw every epoch."""
    classes = np.asarray(classes)
    tagged = tf.data.Dataset.zip(elements, tf.data.Dataset.from_tensor_slices(classes))
    per_class = [tagged.filter(lambda element, c, k=k: tf.equal(c, k)).map(lambda element, c: element)
                 .shuffle(int((classes == k).sum()), seed=seed + int(k), reshuffle_each_iteration=True).repeat()
                 for k in np.unique(classes)]
    mixed = tf.data.Dataset.sample_from_datasets(per_class, weights=[1 / len(per_class)] * len(per_class), seed=seed,
                                                 rerandomize_each_iteration=True)
    return mixed.take(len(classes))


def bytes_dataset(images: Sequence[bytes], image_size: int, batch_size: int) -> tf.data.Dataset:
    """Like image_dataset, for image bytes already in memory (serving)."""
    data = tf.data.Dataset.from_tensor_slices(tf.constant(list(images), dtype=tf.string))
    return data.map(lambda b: decode_and_resize(b, image_size), num_parallel_calls=AUTOTUNE).batch(batch_size)


def mix_batches(batches: tf.data.Dataset, alpha: float, seed: int) -> tf.data.Dataset:
    """MixUp (Zhang et al., 2018) on batches of (inputs, one-hot targets): each input and its target blended with
    another of its batch, the weight drawn from Beta(alpha, alpha), by keras.layers.MixUp.

    Inputs may be images, feature maps or feature vectors (these are mixed as 1x1 maps).
    """
    mixup = keras.layers.MixUp(alpha=alpha, seed=seed)

    def mix(inputs: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        maps = inputs if inputs.shape.rank == 4 else tf.reshape(inputs, [tf.shape(inputs)[0], 1, 1, -1])
        mixed = mixup({"images": maps, "labels": targets})
        return tf.reshape(mixed["images"], tf.shape(inputs)), mixed["labels"]

    return batches.map(mix)  # not in parallel: the layer's random state would advance in a non-reproducible order
