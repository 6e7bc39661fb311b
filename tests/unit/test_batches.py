"""Training streams cached features a batch at a time and still trains the weights Keras trains from arrays held in
memory: same views, same batches, same order."""

import keras
import numpy as np

from skinml.core.recipe import TrainConfig
from skinml.features.batches import RowFile
from skinml.features.cache import FeatureCache
from skinml.features.extraction import CachedFeatures
from skinml.model.network import build_head
from skinml.training.head import compile_for_training, fit_head_on_features

N, VIEWS, DIM, CLASSES = 203, 3, 16, 3


def features_and_labels() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, VIEWS, DIM)).astype("float32"), rng.integers(0, CLASSES, N)


def trained_in_memory(x: np.ndarray, labels: np.ndarray, config: TrainConfig) -> list[np.ndarray]:
    """What the head's training did with every feature in memory: a view per image and epoch, Keras shuffling."""
    keras.utils.set_random_seed(config.seed)
    head = build_head(DIM, CLASSES, config.dropout, config.seed)
    compile_for_training(head, config, labels, CLASSES)
    rng, targets = np.random.default_rng(config.seed), keras.utils.to_categorical(labels, CLASSES)
    for epoch in range(config.epochs):
        chosen = x[np.arange(N), rng.integers(VIEWS, size=N)]
        head.fit(
            chosen,
            targets,
            batch_size=config.batch_size,
            shuffle=True,
            epochs=epoch + 1,
            initial_epoch=epoch,
            verbose=0,
        )
    return head.get_weights()


def test_streamed_training_gives_the_weights_of_training_from_memory(tmp_path):
    x, labels = features_and_labels()
    config = TrainConfig(epochs=3, batch_size=32, dropout=0.3, seed=5, loss="crossentropy")
    cache = FeatureCache(tmp_path / "cache")
    keys = np.array([[f"{row:03d}{view}".rjust(64, "a") for view in range(VIEWS)] for row in range(N)], dtype=object)
    cache.put_many({key: x[row, view] for (row, view), key in np.ndenumerate(keys)})
    keras.utils.set_random_seed(config.seed)
    head = build_head(DIM, CLASSES, config.dropout, config.seed)
    fit_head_on_features(head, CachedFeatures(cache, keys, (DIM,)), labels, config, callbacks=[])
    expected = trained_in_memory(x, labels, config)
    assert all(np.array_equal(a, b) for a, b in zip(head.get_weights(), expected))


def test_row_file_reads_the_rows_it_was_given(tmp_path):
    x, _ = features_and_labels()
    rows = RowFile(tmp_path / "rows.f32", x.shape)
    for start in range(0, N * VIEWS, 64):  # appended in (image, view) order, any chunking
        rows.append(x.reshape(N * VIEWS, DIM)[start : start + 64])
    picked, views = np.array([5, 0, 202, 5]), np.array([2, 0, 1, 0])
    np.testing.assert_array_equal(rows.read(picked, views), x[picked, views])
    rows.close()
