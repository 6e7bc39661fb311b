import numpy as np

from skinml.core.recipe import AugmentConfig
from skinml.data.augment import augmentation_layers, augmented_views

DIGESTS = ["0123456789abcdef" * 4, "fedcba9876543210" * 4]


def images(n: int = 2, size: int = 16) -> np.ndarray:
    return np.random.default_rng(0).uniform(40, 215, (n, size, size, 3)).astype("float32")


def test_description_is_stable_for_cache_keys_and_params():
    assert AugmentConfig().describe() == "rot=0.1,zoom=0.1,shift=0.1,flip=1"
    assert AugmentConfig(rotation=0.0, flip=False).describe() == "rot=0.0,zoom=0.1,shift=0.1,flip=0"


def test_a_cached_view_is_drawn_from_image_content_seed_and_view_alone():
    batch = images()
    view = augmented_views(batch, DIGESTS, AugmentConfig(), seed=0, view=1)
    assert view.shape == batch.shape and view.min() >= 0 and view.max() <= 255
    np.testing.assert_array_equal(view, augmented_views(batch, DIGESTS, AugmentConfig(), seed=0, view=1))
    # the same image gives the same view whatever its neighbours in the batch
    np.testing.assert_array_equal(view[1:], augmented_views(batch[1:], DIGESTS[1:], AugmentConfig(), seed=0, view=1))
    assert not np.allclose(view, augmented_views(batch, DIGESTS, AugmentConfig(), seed=0, view=2))
    assert not np.allclose(view, augmented_views(batch, DIGESTS, AugmentConfig(), seed=1, view=1))
    assert not np.allclose(view, batch)


def test_a_flip_only_view_is_one_of_the_four_flips():
    batch = images(1)
    view = augmented_views(batch, DIGESTS[:1], AugmentConfig(rotation=0.0, zoom=0.0, shift=0.0), seed=3, view=1)[0]
    flips = [batch[0], batch[0, ::-1], batch[0, :, ::-1], batch[0, ::-1, ::-1]]
    assert any(np.allclose(view, flip, atol=1e-3) for flip in flips)


def test_on_the_fly_layers_augment_in_training_only():
    layers = augmentation_layers(AugmentConfig(), seed=1)
    assert [type(layer).__name__ for layer in layers.layers] == [
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
    ]
    batch = images(4)
    assert not np.allclose(np.asarray(layers(batch, training=True)), batch)
    np.testing.assert_array_equal(np.asarray(layers(batch, training=False)), batch)
