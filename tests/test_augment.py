import numpy as np
import pytest

from skinml.cli import build_parser, training_config
from skinml.config import AugmentConfig, preset
from skinml.data.augment import augmentation_layers, augmented_views

COLOUR_ONLY = dict(rotation=0.0, zoom=0.0, shift=0.0, flip=False)
DIGESTS = ["0123456789abcdef" * 4, "fedcba9876543210" * 4]


def colourful_images(n: int = 2, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(40, 215, (n, size, size, 3)).astype("float32")


def test_baseline_description_is_unchanged_so_existing_cache_keys_stay_valid():
    assert AugmentConfig().describe() == "rot=0.1,zoom=0.1,shift=0.1,flip=1"
    assert AugmentConfig(hue=0.02).describe() == "rot=0.1,zoom=0.1,shift=0.1,flip=1,colour=0.0/0.0/0.0/0.02"


def test_brightness_view_shifts_every_pixel_by_one_amount_within_range():
    images = colourful_images()
    cfg = AugmentConfig(brightness=0.1, **COLOUR_ONLY)
    view = augmented_views(images, DIGESTS, cfg, seed=0, view=1)
    for original, shifted in zip(images, view):
        delta = shifted - original
        assert np.allclose(delta, delta.flat[0], atol=1e-3)  # one shift per image, no geometry
        assert 0 < abs(delta.flat[0]) <= 0.1 * 255
    np.testing.assert_array_equal(view, augmented_views(images, DIGESTS, cfg, seed=0, view=1))  # deterministic
    assert not np.allclose(view, augmented_views(images, DIGESTS, cfg, seed=0, view=2))  # each view its own draw


def test_saturation_and_hue_leave_grey_grey_and_contrast_keeps_channel_means():
    grey = np.full((2, 8, 8, 3), 120.0, dtype="float32")
    grey[:, :4] = 60.0
    view = augmented_views(grey, DIGESTS, AugmentConfig(saturation=0.5, hue=0.2, **COLOUR_ONLY), seed=0, view=1)
    np.testing.assert_allclose(view, grey, atol=1e-2)
    images = colourful_images()
    view = augmented_views(images, DIGESTS, AugmentConfig(contrast=0.3, **COLOUR_ONLY), seed=0, view=1)
    np.testing.assert_allclose(view.mean(axis=(1, 2)), images.mean(axis=(1, 2)), atol=1e-2)
    assert not np.allclose(view, images)


def test_all_colour_changes_stay_in_range_and_on_the_fly_layers_use_the_same_ranges():
    cfg = AugmentConfig(brightness=0.3, contrast=0.5, saturation=0.9, hue=0.5)
    images = colourful_images(4)
    view = augmented_views(images, DIGESTS * 2, cfg, seed=1, view=1)
    assert view.min() >= 0 and view.max() <= 255
    layers = augmentation_layers(cfg, seed=1)
    names = [type(layer).__name__ for layer in layers.layers]
    assert names[:4] == ["RandomBrightness", "RandomContrast", "RandomSaturation", "RandomHue"]
    trained = np.asarray(layers(images, training=True))
    assert trained.min() >= 0 and trained.max() <= 255 and not np.allclose(trained, images)
    np.testing.assert_array_equal(np.asarray(layers(images, training=False)), images)


def test_colour_jitter_option_reaches_the_config_and_keeps_the_geometry():
    args = build_parser().parse_args(["train", "--preset", "best", "--colour-jitter", "0.1,0.2,0.2,0.02"])
    augment = training_config(args).augment
    assert augment.colour == (0.1, 0.2, 0.2, 0.02)
    assert (augment.rotation, augment.flip) == (preset("best").augment.rotation, True)
    assert preset("best").replace(augment={"hue": 0.05}).augment == AugmentConfig(hue=0.05)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--colour-jitter", "0.1,0.2"])
    with pytest.raises(ValueError, match="augment.hue"):
        preset("baseline").replace(augment={"hue": 2.0})


def test_colour_jitter_travels_to_the_pipeline_flow_as_plain_json():
    import json

    config = preset("best").replace(augment={"brightness": 0.1, "hue": 0.02}, dropout=0.3)
    overrides = json.loads(json.dumps(config.preset_overrides()))
    assert set(overrides) == {"augment", "dropout"}
    assert preset("best").replace(**overrides) == config
