import sqlite3

import keras
import numpy as np
import pytest

from skinml.core.recipe import AugmentConfig
from skinml.data.dataset import load_dataset
from skinml.features import extraction as features
from skinml.features.cache import FeatureCache
from skinml.features.extraction import (
    extract_features,
    extractor_fingerprint,
    file_digest,
    view_name,
)
from skinml.model import engine
from skinml.model.network import build_feature_extractor, build_head

from ..conftest import IMAGE_SIZE


@pytest.fixture(scope="module")
def extractor(test_weights):
    return build_feature_extractor(IMAGE_SIZE, test_weights)


@pytest.fixture
def paths(synthetic_dir):
    return load_dataset(synthetic_dir, check_images=False)["path"].tolist()[:10]


def test_key_changes_with_every_ingredient_and_only_then(extractor, test_weights, paths, tmp_path, monkeypatch):
    augment = AugmentConfig()
    image, fingerprint = file_digest(paths[0]), extractor_fingerprint(extractor)
    key = FeatureCache.key(image, fingerprint, view_name(1, augment, 0))
    assert key == FeatureCache.key(
        file_digest(paths[0]),
        extractor_fingerprint(build_feature_extractor(IMAGE_SIZE, test_weights)),
        view_name(1, AugmentConfig(), 0),
    )
    changed = [
        FeatureCache.key(file_digest(paths[1]), fingerprint, view_name(1, augment, 0)),  # image bytes
        FeatureCache.key(
            image, extractor_fingerprint(build_feature_extractor(48, test_weights)), view_name(1, augment, 0)
        ),  # input size
        FeatureCache.key(
            image, extractor_fingerprint(build_feature_extractor(IMAGE_SIZE, "none")), view_name(1, augment, 0)
        ),  # weights
        FeatureCache.key(
            image,
            extractor_fingerprint(build_feature_extractor(IMAGE_SIZE, "none", alpha=0.35)),
            view_name(1, augment, 0),
        ),  # architecture
        FeatureCache.key(
            image,
            extractor_fingerprint(build_feature_extractor(IMAGE_SIZE, test_weights, fine_tune_from="block_14")),
            view_name(1, augment, 0),
        ),  # where the backbone is cut
        FeatureCache.key(image, fingerprint, view_name(2, augment, 0)),  # view index
        FeatureCache.key(image, fingerprint, view_name(1, augment, 1)),  # augmentation seed
        FeatureCache.key(image, fingerprint, view_name(1, AugmentConfig(rotation=0.2), 0)),  # augmentation
        FeatureCache.key(image, fingerprint, view_name(0, augment, 0)),  # plain view
    ]
    monkeypatch.setattr(features, "CACHE_VERSION", features.CACHE_VERSION + 1)
    changed.append(FeatureCache.key(image, extractor_fingerprint(extractor), view_name(1, augment, 0)))  # version
    assert len({key, *changed}) == len(changed) + 1


def test_second_extraction_is_served_from_cache(extractor, paths, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path / "c")
    first = extract_features(extractor, paths, [0, 1, 2], AugmentConfig(), 0, cache).load()
    assert first.shape == (10, 3, 1280)
    assert cache.info()["entries"] == 30
    assert not np.allclose(first[:, 0], first[:, 1])  # augmented views differ from the plain image
    monkeypatch.setattr(engine, "predictor", lambda *_: pytest.fail("backbone ran on a warm cache"))
    np.testing.assert_array_equal(
        extract_features(extractor, paths, [0, 1, 2], AugmentConfig(), 0, cache).load(), first
    )


def test_corrupted_and_half_written_entries_are_recomputed(extractor, paths, tmp_path):
    cache = FeatureCache(tmp_path / "c")
    handle = extract_features(extractor, paths, [0], AugmentConfig(), 0, cache)
    first = handle.load()
    corrupted, truncated = handle.keys[0, 0], handle.keys[1, 0]
    for key, change in (
        (corrupted, lambda blob: blob[:100] + bytes([blob[100] ^ 0xFF]) + blob[101:]),
        (truncated, lambda blob: blob[:57]),
    ):
        with sqlite3.connect(cache.shard_path(key[0])) as shard:
            blob = shard.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()[0]
            shard.execute("UPDATE entries SET value = ? WHERE key = ?", (change(blob), key))
    assert cache.get(corrupted) is None and cache.get(truncated) is None
    assert cache.info()["entries"] == 8  # both dropped when read
    again = extract_features(extractor, paths, [0], AugmentConfig(), 0, cache).load()
    np.testing.assert_allclose(again, first, rtol=1e-3, atol=1e-4)  # batch size differs: float noise only
    assert cache.info()["entries"] == 10


def test_cache_clear(extractor, paths, tmp_path):
    cache = FeatureCache(tmp_path / "c")
    extract_features(extractor, paths[:3], [0], AugmentConfig(), 0, cache)
    assert cache.clear() == 3
    assert cache.info()["entries"] == 0


def test_training_from_cache_equals_training_through_the_backbone(extractor, paths, tmp_path):
    """Same views, same init, same batches: the head learns the same weights either way."""
    from skinml.data.loader import image_dataset
    from skinml.model.network import build_classifier

    labels = keras.utils.to_categorical(np.arange(10) % 7, 7)
    features = extract_features(
        extractor, paths, [0], AugmentConfig(), 0, FeatureCache(tmp_path / "c"), engine="tensorflow"
    ).load()[:, 0]  # the engines agree to 1e-5: test_engine.py
    head_a = build_head(1280, 7, dropout=0.0, seed=7)
    head_a.compile(keras.optimizers.Adam(1e-2), "categorical_crossentropy")
    head_a.fit(features, labels, batch_size=5, epochs=3, shuffle=False, verbose=0)

    head_b = build_head(1280, 7, dropout=0.0, seed=7)
    whole = build_classifier(extractor, head_b)
    whole.compile(keras.optimizers.Adam(1e-2), "categorical_crossentropy")
    images = np.concatenate([b.numpy() for b in image_dataset(paths, IMAGE_SIZE, 10)])
    whole.fit(images, labels, batch_size=5, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(head_a.get_weights(), head_b.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)  # float noise of batch-size-dependent kernels


def test_only_missing_views_go_through_the_backbone(extractor, paths, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path / "c")
    plain = extract_features(extractor, paths, [0], AugmentConfig(), 0, cache).load()
    seen = []
    original = engine.predictor

    def counting_predictor(model, name=None, precision=None):
        run = original(model, name, precision)
        return lambda batch: seen.append(len(batch)) or run(batch)

    monkeypatch.setattr(engine, "predictor", counting_predictor)
    both = extract_features(extractor, paths, [0, 1], AugmentConfig(), 0, cache).load()
    assert sum(seen) == len(paths)  # view 1 only; view 0 came from the cache
    np.testing.assert_array_equal(both[:, 0], plain[:, 0])
