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


@pytest.mark.parametrize("shape", [(6,), (3, 2, 4)])
def test_mixup_blends_each_input_and_its_target_with_one_other_of_its_batch(shape):
    import tensorflow as tf

    from skinml.data.pipeline import mix_batches

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(7, *shape)).astype("float32")
    targets = np.eye(7, dtype="float32")  # one class per input: a mixed target names both inputs and the weight
    batches = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(7).repeat(5)
    weights = []
    for mixed, soft in mix_batches(batches, alpha=0.4, seed=3):
        mixed, soft = np.asarray(mixed), np.asarray(soft)
        assert mixed.shape == inputs.shape
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(mixed.reshape(7, -1), soft @ inputs.reshape(7, -1), rtol=1e-5, atol=1e-5)
        weights.extend(soft[i, i] for i in range(7))
    assert len(weights) == 35 and any(0.05 < w < 0.95 for w in weights)  # real blends, not only the inputs
    again = [np.asarray(soft) for _, soft in mix_batches(batches, alpha=0.4, seed=3)]
    np.testing.assert_array_equal(np.concatenate(again).reshape(5, 7, 7).diagonal(axis1=1, axis2=2).ravel(),
                                  weights)  # the seed fixes the draws: runs are reproducible


def test_mixup_option_reaches_the_config():
    args = build_parser().parse_args(["train", "--preset", "best", "--mixup", "0.2"])
    assert training_config(args).mixup == 0.2 and preset("best").mixup == 0.0
    assert preset("best").replace(mixup=0.2).params()["mixup"] == 0.2
    with pytest.raises(ValueError, match="mixup"):
        preset("baseline").replace(mixup=-0.1)


def test_balanced_training_images_keep_their_labels_and_balance_the_classes(synthetic_dir):
    from skinml.data.dataset import load_dataset
    from skinml.data.pipeline import image_dataset

    paths = load_dataset(synthetic_dir)["path"].tolist()[:60]
    classes = np.repeat([0, 1, 2], [50, 8, 2])  # imbalanced like nv against df (whatever the images show)
    labels = np.stack([np.arange(60), classes], axis=1)  # (image index, its class): what the pipeline carries

    def epoch(data) -> np.ndarray:
        return np.concatenate([np.asarray(batch_labels) for _, batch_labels in data])

    dataset = image_dataset(paths, 8, 16, labels=labels, shuffle_seed=3, balance_classes=classes)
    epochs = [epoch(dataset) for _ in range(3)]
    for drawn in epochs:
        assert len(drawn) == 60
        np.testing.assert_array_equal(drawn[:, 1], classes[drawn[:, 0]])  # no image changed label on the way
    counts = np.bincount(np.concatenate(epochs)[:, 1])
    assert np.all(np.abs(counts - 60) < 25), counts  # each class about a third, not 150 / 24 / 6
    assert not np.array_equal(epochs[0], epochs[1])  # a new draw every epoch
    again = image_dataset(paths, 8, 16, labels=labels, shuffle_seed=3, balance_classes=classes)
    np.testing.assert_array_equal(epoch(again), epochs[0])  # the seed fixes the draws
