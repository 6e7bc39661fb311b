import importlib.util

import numpy as np
import pytest

from skinml.core.recipe import AugmentConfig
from skinml.data.dataset import load_dataset
from skinml.features.cache import FeatureCache
from skinml.features.extraction import extract_features
from skinml.model.engine import (
    ENGINE_ENV,
    PRECISION_ENV,
    cpu_has_bf16,
    effective_precision,
    has_gpu,
    pick_engine,
    predictor,
)
from skinml.model.network import build_feature_extractor

from ..conftest import IMAGE_SIZE

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")


def test_pick_engine_follows_request_then_env_then_hardware(monkeypatch):
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert pick_engine("tensorflow") == "tensorflow"
    expected = "tensorflow" if has_gpu() or importlib.util.find_spec("openvino") is None else "openvino"
    assert pick_engine() == expected
    monkeypatch.setenv(ENGINE_ENV, "tensorflow")
    assert pick_engine() == "tensorflow"
    monkeypatch.setenv(ENGINE_ENV, "onnx")
    with pytest.raises(ValueError, match=r"'onnx'.*SKINML_ENGINE.*auto, openvino, tensorflow"):
        pick_engine()


def test_auto_engine_is_tensorflow_when_tensorflow_sees_a_gpu(monkeypatch):
    import skinml.model.engine

    monkeypatch.delenv(ENGINE_ENV, raising=False)
    monkeypatch.setattr(skinml.model.engine, "has_gpu", lambda: True)
    assert pick_engine() == "tensorflow"
    assert pick_engine("auto") == "tensorflow"


@needs_openvino
@pytest.mark.parametrize("cut", [None, "block_14"])
def test_openvino_computes_the_same_features_as_tensorflow(test_weights, cut):
    extractor = build_feature_extractor(IMAGE_SIZE, test_weights, fine_tune_from=cut)
    images = np.random.default_rng(0).uniform(0, 255, (5, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    reference = predictor(extractor, "tensorflow")(images)
    fast = predictor(extractor, "openvino")(images)
    assert fast.shape == reference.shape == (5, *extractor.output_shape[1:])
    assert np.abs(reference).max() > 0.1
    np.testing.assert_allclose(fast, reference, atol=1e-4 * np.abs(reference).max(), rtol=1e-4)
    assert predictor(extractor, "openvino") is predictor(extractor, "openvino")  # compiled once per model


@needs_openvino
def test_cache_filled_by_either_engine_holds_the_same_features(test_weights, synthetic_dir, tmp_path):
    extractor = build_feature_extractor(IMAGE_SIZE, test_weights)
    paths = load_dataset(synthetic_dir, check_images=False)["path"].tolist()[:6]
    by_engine = {
        engine: extract_features(
            extractor, paths, [0, 1], AugmentConfig(), 0, FeatureCache(tmp_path / engine), engine=engine
        ).load()
        for engine in ("tensorflow", "openvino")
    }
    scale = np.abs(by_engine["tensorflow"]).max()
    np.testing.assert_allclose(by_engine["openvino"], by_engine["tensorflow"], atol=1e-4 * scale, rtol=1e-4)


def test_precision_follows_request_then_env_and_falls_back_to_f32_off_openvino(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert effective_precision("tensorflow") == "f32"
    with pytest.warns(UserWarning, match="bf16 was asked for"):
        assert effective_precision("tensorflow", "bf16") == "f32"
    monkeypatch.setenv(PRECISION_ENV, "fp8")
    with pytest.raises(ValueError, match=r"'fp8'.*SKINML_PRECISION.*f32, bf16"):
        effective_precision("tensorflow")


@needs_openvino
@pytest.mark.skipif(not (importlib.util.find_spec("openvino") and cpu_has_bf16()), reason="no native bf16 on this CPU")
def test_bf16_features_are_close_to_f32_but_cached_apart(test_weights, synthetic_dir, tmp_path):
    extractor = build_feature_extractor(IMAGE_SIZE, test_weights)
    paths = load_dataset(synthetic_dir, check_images=False)["path"].tolist()[:6]
    cache = FeatureCache(tmp_path)
    bf16, f32 = (
        extract_features(
            extractor, paths, [0], AugmentConfig(), 0, cache, engine="openvino", precision=precision
        ).load()
        for precision in ("bf16", "f32")
    )
    assert cache.info()["entries"] == 12  # one entry per image and precision: f32 did not read bf16's
    reference = extract_features(
        extractor, paths, [0], AugmentConfig(), 0, FeatureCache(tmp_path / "tf"), engine="tensorflow"
    ).load()
    scale = np.abs(reference).max()
    np.testing.assert_allclose(f32, reference, atol=1e-4 * scale, rtol=1e-4)
    assert np.abs(bf16 - f32).max() > 1e-3 * scale  # a different function...
    # ...yet the same features, not garbage (random test weights amplify bf16 rounding: correlation ~0.85 here;
    # with the ImageNet weights, cosine 0.99, docs/benchmarks.md)
    assert np.corrcoef(bf16.ravel(), f32.ravel())[0, 1] > 0.6
