"""The feature cache's store with real processes: two writers at once, and a writer killed with SIGKILL mid-way."""

import hashlib
import multiprocessing
import signal
import subprocess
import sys
import textwrap

import numpy as np

from skinml.core.recipe import AugmentConfig
from skinml.data.dataset import load_dataset
from skinml.features.cache import FeatureCache
from skinml.features.extraction import extract_features
from skinml.model import engine
from skinml.model.network import build_feature_extractor

from ..conftest import IMAGE_SIZE, stop_process, wait_for


def key(k: int) -> str:
    return hashlib.sha256(str(k).encode()).hexdigest()  # as the cache's keys: spread over the shards


def write_entries(root: str, first: int, count: int) -> None:
    """Entries `first` ... `first + count - 1`, 50 per transaction (run in another process)."""
    cache = FeatureCache(root)
    for start in range(first, first + count, 50):
        cache.put_many({key(k): np.full(64, k, dtype=np.float32) for k in range(start, start + 50)})


def test_two_processes_write_at_once_and_every_entry_is_whole(tmp_path):
    spawn = multiprocessing.get_context("spawn")
    writers = [spawn.Process(target=write_entries, args=(str(tmp_path / "c"), first, 2000)) for first in (0, 1000)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0
    cache = FeatureCache(tmp_path / "c")
    assert cache.info()["entries"] == 3000  # 0..2999, the overlap written twice
    found = cache.get_many([key(k) for k in range(3000)])
    assert len(found) == 3000 and all(found[key(k)][0] == k for k in range(3000))
    assert cache.info()["files"] <= 3 * 16  # a shard, its write-ahead log and index: not a file per entry
    assert cache.clear() == 3000 and not (tmp_path / "c").exists()


def test_a_damaged_cache_file_is_dropped_and_its_entries_recomputed(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    keys = [f"{k:064x}" for k in range(200)]  # keys 0x00.. all in shard 0
    cache.put_many({key: np.full(300, 1.0, dtype=np.float32) for key in keys})
    cache.close()
    shard = cache.shard_path("0")
    shard.write_bytes(b"not a database" * 1000)  # overwritten on disk
    damaged = FeatureCache(tmp_path / "c")
    assert damaged.get_many(keys) == {} and not shard.exists()  # dropped, not read
    damaged.put_many({keys[0]: np.ones(300, dtype=np.float32)})
    assert damaged.info()["entries"] == 1


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from skinml.model import engine
    real = engine.predictor
    def slow(model, name=None, precision=None):  # slow enough to be killed between batches
        run = real(model, name, precision)
        return lambda batch: time.sleep(0.5) or run(batch)
    engine.predictor = slow
    from skinml.core.recipe import AugmentConfig
    from skinml.features.cache import FeatureCache
    from skinml.features.extraction import extract_features
    from skinml.model.network import build_feature_extractor
    root, size, weights, *paths = sys.argv[1:]
    extract_features(build_feature_extractor(int(size), weights), paths, [0, 1], AugmentConfig(), 0,
                     FeatureCache(root), batch_size=2)
""")


def test_a_cache_left_by_a_killed_extraction_is_used_and_completed(test_weights, synthetic_dir, tmp_path, monkeypatch):
    paths = load_dataset(synthetic_dir, check_images=False)["path"].tolist()[:20]
    root = tmp_path / "c"
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(root), str(IMAGE_SIZE), test_weights, *paths])
    try:
        wait_for(
            lambda: root.exists() and FeatureCache(root).info()["entries"] >= 4, 180, "the first entries", [process]
        )
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        stop_process(process)
    left = FeatureCache(root).info()["entries"]
    assert 4 <= left < 40  # killed part-way
    seen = []
    real = engine.predictor
    monkeypatch.setattr(engine, "predictor", lambda *a: (lambda run: lambda b: seen.append(len(b)) or run(b))(real(*a)))
    extractor = build_feature_extractor(IMAGE_SIZE, test_weights)
    completed = extract_features(extractor, paths, [0, 1], AugmentConfig(), 0, FeatureCache(root)).load()
    assert sum(seen) < 2 * len(paths)  # what the killed run wrote was used
    assert FeatureCache(root).info()["entries"] == 40
    fresh = extract_features(extractor, paths, [0, 1], AugmentConfig(), 0, FeatureCache(tmp_path / "fresh")).load()
    np.testing.assert_allclose(completed, fresh, rtol=1e-3, atol=1e-4)  # batch sizes differ: float noise only
