"""The `best` recipe's parts: cutting the backbone, fine-tuning its top from cached feature maps, the temperature
layer kept in the model, and Grad-CAM."""

import keras
import mlflow
import numpy as np
import pytest

from skinml.core.recipe import TrainConfig
from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.data.dataset import load_dataset
from skinml.data.loader import image_dataset
from skinml.data.training_set import labelled_split
from skinml.evaluation.explain import feature_maps, fixed_sample, grad_cam
from skinml.features.cache import FeatureCache
from skinml.features.extraction import extractor_fingerprint
from skinml.model.calibration import fit_temperature
from skinml.model.network import (
    TemperatureScaling,
    build_backbone_top,
    build_classifier,
    build_feature_extractor,
    build_head,
    set_top_trainable,
    split_classifier,
)
from skinml.stages.evaluate import evaluate
from skinml.stages.train import train
from skinml.tracking.model_store import load_keras_model
from skinml.training.head import pooled_top_features, warm_up_head

from ..conftest import IMAGE_SIZE
from .test_train_evaluate import b64_images, tiny_config


def test_cut_extractor_and_top_compose_to_the_whole_backbone(test_weights):
    images = np.random.default_rng(0).uniform(0, 255, (3, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    whole = build_feature_extractor(IMAGE_SIZE, test_weights)
    stem = build_feature_extractor(IMAGE_SIZE, test_weights, fine_tune_from="block_14")
    top = build_backbone_top(IMAGE_SIZE, test_weights, 1.0, "block_14")
    assert stem.output_shape[1:] == (1, 1, 160)  # 32 px input: the 7x7 map of 224 px is 1x1 here
    pooled = keras.layers.GlobalAveragePooling2D()(top(stem(images)))
    np.testing.assert_allclose(np.asarray(pooled), np.asarray(whole(images)), rtol=1e-4, atol=1e-5)
    assert extractor_fingerprint(stem) != extractor_fingerprint(whole)  # different cache keys
    with pytest.raises(ValueError, match="no block 'block_99'"):
        build_feature_extractor(IMAGE_SIZE, test_weights, fine_tune_from="block_99")


def test_unfrozen_top_trains_its_convolutions_but_batchnorm_stays_in_inference_mode(test_weights):
    top = build_backbone_top(IMAGE_SIZE, test_weights, 1.0, "block_16")
    head = build_head((1, 1, 160), 7, dropout=0.0, seed=1, top=top)
    assert len(head.trainable_weights) == 2  # only the Dense layer while warming up
    set_top_trainable(head, True)
    trainable = {w.path for w in head.trainable_weights}
    assert any("block_16_expand" in p for p in trainable) and any("Conv_1" in p for p in trainable)
    assert not any("BN" in p or "bn" in p for p in trainable)
    moving_mean = [np.array(w) for w in top.non_trainable_weights if "moving_mean" in w.path]
    head.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 1, 1, 160)).astype("float32")
    head.fit(x, keras.utils.to_categorical(np.arange(32) % 7, 7), epochs=1, verbose=0)
    after = [np.array(w) for w in top.non_trainable_weights if "moving_mean" in w.path]
    assert all(np.array_equal(a, b) for a, b in zip(moving_mean, after))


def test_warm_up_trains_the_heads_own_dense_layer_on_the_tops_pooled_output(test_weights, tmp_path):
    top = build_backbone_top(IMAGE_SIZE, test_weights, 1.0, "block_15")
    head = build_head((1, 1, 160), 7, dropout=0.0, seed=1, top=top)
    maps = np.random.default_rng(0).normal(size=(5, 2, 1, 1, 160)).astype("float32")  # 5 images, 2 views
    rows = pooled_top_features(top, maps, tmp_path / "pooled.f32", batch_size=4)  # written to a file, read by row
    assert rows.shape == (5, 2, 1280)
    pooled = rows.read(np.repeat(np.arange(5), 2), np.tile([0, 1], 5)).reshape(5, 2, 1280)
    expected = keras.layers.GlobalAveragePooling2D()(top(maps.reshape(10, 1, 1, 160)))
    np.testing.assert_allclose(pooled.reshape(10, -1), np.asarray(expected), rtol=1e-4, atol=1e-5)

    warm_up = warm_up_head(head)
    before = np.array(head.get_layer("probs").kernel)
    warm_up.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    warm_up.fit(pooled.reshape(10, -1), keras.utils.to_categorical(np.arange(10) % 7, 7), epochs=2, verbose=0)
    assert not np.allclose(np.array(head.get_layer("probs").kernel), before)  # the head's own layer trained
    np.testing.assert_allclose(
        np.asarray(warm_up(pooled[:, 0])), np.asarray(head(maps[:, 0])), rtol=1e-4, atol=1e-6
    )  # the warm-up model is the head on the pooled output


def test_temperature_layer_is_saved_with_the_model(tmp_path, test_weights):
    extractor = build_feature_extractor(IMAGE_SIZE, test_weights)
    head = build_head(1280, 7, dropout=0.0, seed=3)
    temperature = 2.0
    model = build_classifier(extractor, head, TemperatureScaling(temperature, name="temperature"))
    images = np.random.default_rng(0).uniform(0, 255, (4, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    raw = np.asarray(head(extractor(images)))
    logits = np.log(raw) / temperature
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(model(images)), expected, rtol=1e-4)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(np.asarray(loaded(images)), expected, rtol=1e-4)
    assert split_classifier(loaded)[2].temperature == temperature
    np.testing.assert_array_equal(np.asarray(model(images)).argmax(axis=1), raw.argmax(axis=1))  # same classes


def assert_fitted_on_the_final_model(classifier: keras.Model, data_dir, seed: int, temperature: float) -> None:
    """The logged temperature is the one that the saved network's own validation probabilities give (training
    reuses its last epoch's validation pass instead of predicting again)."""
    data, _, _ = labelled_split(data_dir, None, TrainConfig(seed=seed))
    val = data[data["split"] == "val"]
    images = np.concatenate([b.numpy() for b in image_dataset(val["path"].tolist(), IMAGE_SIZE, 8)])
    extractor, head, _ = split_classifier(classifier)
    refit = fit_temperature(np.asarray(head(extractor(images))), val["label"].to_numpy())
    assert refit == pytest.approx(temperature, rel=1e-3)


def test_fine_tuning_from_cached_maps_with_calibration_end_to_end(synthetic_dir, test_weights):
    config = tiny_config(
        test_weights,
        epochs=3,
        fine_tune_from="block_15",
        fine_tune_epochs=3,
        fine_tune_learning_rate=1e-3,
        loss="logit_adjusted",
        temperature_scaling=True,
    )
    result = train(config, synthetic_dir)
    run = mlflow.get_run(result["run_id"])
    assert run.data.params["fine_tune_from"] == "block_15"
    assert run.data.params["loss"] == "logit_adjusted_crossentropy"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_balanced_accuracy")
    assert [m.step for m in history] == list(range(1, 7))  # warm-up epochs, then fine-tuning epochs
    metrics = run.data.metrics
    assert metrics["temperature"] > 0 and 0 <= metrics["val_adjusted_ece"] <= 1

    classifier = load_keras_model(result["model_uri"])
    extractor, head, scaling = split_classifier(classifier)
    assert scaling is not None and scaling.temperature == pytest.approx(metrics["temperature"])
    assert_fitted_on_the_final_model(classifier, synthetic_dir, config.seed, metrics["temperature"])
    fresh_top = build_backbone_top(IMAGE_SIZE, test_weights, 1.0, "block_15")
    trained_top = next(layer for layer in head.layers if isinstance(layer, keras.Model))
    kernel = "block_16_project/kernel"
    changed = {w.path: w for w in trained_top.weights}
    assert not np.allclose(
        np.asarray(changed[next(p for p in changed if kernel in p)]),
        np.asarray(next(w for w in fresh_top.weights if kernel in w.path)),
    )  # fine-tuned
    moving = [(w.path, np.asarray(w)) for w in trained_top.weights if "moving_variance" in w.path]
    fresh = {w.path: np.asarray(w) for w in fresh_top.weights}
    assert all(np.array_equal(value, fresh[path]) for path, value in moving)  # BatchNorm statistics kept

    # The served model gives the calibrated probabilities, and the evaluation sees the same ones.
    paths = load_dataset(synthetic_dir)["path"].tolist()[:6]
    served = mlflow.pyfunc.load_model(result["model_uri"]).predict(b64_images(paths))
    images = np.concatenate([b.numpy() for b in image_dataset(paths, IMAGE_SIZE, 8)])
    np.testing.assert_allclose(served[list(CLASSES)].to_numpy(), np.asarray(classifier(images)), rtol=1e-4, atol=1e-6)
    report = evaluate(result["model_uri"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(report["run_id"], "plots")}
    assert "plots/grad_cam.jpg" in artifacts and "plots/reliability_diagram.png" in artifacts


def test_fine_tuning_on_the_fly_trains_the_top_and_keeps_the_frozen_part(synthetic_dir, test_weights):
    config = tiny_config(
        test_weights,
        feature_cache=False,
        epochs=1,
        fine_tune_from="block_15",
        fine_tune_epochs=2,
        fine_tune_learning_rate=1e-3,
        temperature_scaling=True,
    )
    result = train(config, synthetic_dir)
    run = mlflow.get_run(result["run_id"])
    assert run.data.params["feature_cache"] == "False" and run.data.params["fine_tune_from"] == "block_15"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_balanced_accuracy")
    assert [m.step for m in history] == [1, 2, 3]  # the warm-up epoch, then the fine-tuning epochs
    assert run.data.metrics["temperature"] > 0 and 0 <= run.data.metrics["val_adjusted_ece"] <= 1

    classifier = load_keras_model(result["model_uri"])
    extractor, head, scaling = split_classifier(classifier)
    assert scaling is not None and scaling.temperature == pytest.approx(run.data.metrics["temperature"])
    assert_fitted_on_the_final_model(classifier, synthetic_dir, config.seed, run.data.metrics["temperature"])
    fresh_stem = build_feature_extractor(IMAGE_SIZE, test_weights, fine_tune_from="block_15")
    assert extractor_fingerprint(extractor) == extractor_fingerprint(fresh_stem)  # frozen part untouched
    fresh_top = {w.path: np.asarray(w) for w in build_backbone_top(IMAGE_SIZE, test_weights, 1.0, "block_15").weights}
    trained_top = next(layer for layer in head.layers if isinstance(layer, keras.Model))
    kernel = next(w for w in trained_top.weights if "block_16_project/kernel" in w.path)
    assert not np.allclose(np.asarray(kernel), fresh_top[kernel.path])  # fine-tuned
    moving = [w for w in trained_top.weights if "moving_variance" in w.path]
    assert moving and all(np.array_equal(np.asarray(w), fresh_top[w.path]) for w in moving)

    served = mlflow.pyfunc.load_model(result["model_uri"]).predict(
        b64_images(load_dataset(synthetic_dir)["path"].tolist()[:3])
    )
    np.testing.assert_allclose(served[list(CLASSES)].sum(axis=1), 1.0, rtol=1e-5)


def test_grad_cam_is_the_class_weighted_feature_map(test_weights, synthetic_dir, tmp_path):
    extractor = build_feature_extractor(48, test_weights)  # 48 px: a 2x2 final feature map
    head = build_head(1280, 7, dropout=0.0, seed=5)
    model = build_classifier(extractor, head)
    paths = load_dataset(synthetic_dir)["path"].tolist()[:3]
    images = np.concatenate([batch.numpy() for batch in image_dataset(paths, 48, 8)])
    maps = np.asarray(keras.Model(extractor.input, extractor.get_layer("pool").input)(images))
    cache = FeatureCache(tmp_path / "cache")
    np.testing.assert_allclose(feature_maps(model, paths, cache), maps, atol=1e-3)  # computed into the cache
    assert cache.info()["entries"] == 3
    np.testing.assert_allclose(feature_maps(model, paths, cache), maps, atol=1e-3)  # read back from it
    classes = np.array([0, 3, 6])
    cams = grad_cam(model, maps, classes)
    assert cams.shape == (3, 48, 48) and cams.min() >= 0 and cams.max() <= 1

    kernel = np.asarray(head.get_layer("probs").kernel)
    for cam, feature_map, c in zip(cams, maps, classes):
        expected = np.maximum(feature_map @ kernel[:, c], 0)  # for GAP -> Dense, Grad-CAM is CAM
        if expected.max() > 0:
            corner = expected / expected.max()
            np.testing.assert_allclose(cam[[0, -1]][:, [0, -1]], corner[[0, -1]][:, [0, -1]], atol=0.02)

    data = load_dataset(synthetic_dir)
    sample = fixed_sample(data, per_class=2, classes=CLASSES)
    assert sample.groupby("dx").size().to_dict() == {name: 2 for name in CLASSES}
    shuffled = fixed_sample(data.sample(frac=1, random_state=1), 2, CLASSES)
    assert sample["image_id"].tolist() == shuffled["image_id"].tolist()
