"""The feature cache's store: content-addressed entries in 16 SQLite files (shards, by the key's first hex digit).

A file per entry made a million files for a large set, and `cache info` had to walk them all; SQLite keeps many
entries per file and gives what the store needs: a write is a transaction (a process killed mid-write leaves the
shard as it was before it, the write-ahead log rolls the rest back on the next open), two processes may write at
once (each waits for the other's transaction, `timeout`), and a count is an index walk. Each value still carries its
own checksum: a corrupted entry is dropped on read and recomputed by the caller.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import sqlite3
import struct
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from skinml.core import settings

log = logging.getLogger(__name__)
MAGIC = b"SKF1"
HEADER = struct.Struct("<4sI")  # magic, number of float32 values
CHECKSUM_BYTES = 32
SHARDS = "0123456789abcdef"
WAIT_SECONDS = 120  # how long a write waits for another process's transaction on the same shard
MAX_VARIABLES = 500  # keys per SELECT (SQLite's limit on bound variables is 32766; smaller keeps statements short)


def default_cache_dir() -> Path:
    """$SKINML_CACHE_DIR, else the user's cache folder (~/.cache/skinml/features)."""
    return settings.user_cache("SKINML_CACHE_DIR", "features")


def encode(vector: np.ndarray) -> bytes:
    """An entry's bytes: header, little-endian float32 values, sha256 of both."""
    vector = np.ascontiguousarray(vector, dtype="<f4").ravel()
    payload = HEADER.pack(MAGIC, vector.size) + vector.tobytes()
    return payload + hashlib.sha256(payload).digest()


def decode(blob: bytes) -> np.ndarray | None:
    """The vector of an entry, or None when it is truncated or its checksum does not match."""
    if len(blob) < HEADER.size + CHECKSUM_BYTES:
        return None
    magic, size = HEADER.unpack_from(blob)
    payload, checksum = blob[:-CHECKSUM_BYTES], blob[-CHECKSUM_BYTES:]
    if magic != MAGIC or len(payload) != HEADER.size + 4 * size or hashlib.sha256(payload).digest() != checksum:
        return None
    return np.frombuffer(payload, dtype="<f4", offset=HEADER.size)


class FeatureCache:
    """Feature vectors by key (skinml.features.extraction makes the keys), in SQLite shards under `root`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._connections: dict[str, sqlite3.Connection] = {}
        self._lock = threading.Lock()  # Keras may read batches from a worker thread

    def __reduce__(self):  # a copy (another process, Prefect's parameter hashing) opens its own connections
        return FeatureCache, (str(self.root),)

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureCache) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    @classmethod
    def default(cls) -> FeatureCache:
        return cls(default_cache_dir())

    @staticmethod
    def key(image_digest: str, extractor_fingerprint: str, view: str) -> str:
        return hashlib.sha256(f"{image_digest}|{extractor_fingerprint}|{view}".encode()).hexdigest()

    def shard_path(self, shard: str) -> Path:
        return self.root / f"features-{shard}.sqlite"

    def _connection(self, shard: str) -> sqlite3.Connection:
        if shard not in self._connections:
            self.root.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.shard_path(shard), timeout=WAIT_SECONDS, check_same_thread=False)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses at most the last commits
                connection.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            except sqlite3.Error:
                connection.close()
                raise
            self._connections[shard] = connection
        return self._connections[shard]

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors of those `keys` that are present and whole (a corrupted entry is deleted)."""
        by_shard: dict[str, list[str]] = {}
        for key in keys:
            by_shard.setdefault(key[0], []).append(key)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for shard, wanted in by_shard.items():
                if self.shard_path(shard).exists():
                    with self._dropped_if_damaged(shard):
                        found.update(self._read_shard(shard, wanted))
        return found

    def _read_shard(self, shard: str, wanted: list[str]) -> dict[str, np.ndarray]:
        connection, found, bad = self._connection(shard), {}, []
        for start in range(0, len(wanted), MAX_VARIABLES):
            chunk = wanted[start : start + MAX_VARIABLES]
            rows = connection.execute(
                f"SELECT key, value FROM entries WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            for key, blob in rows:
                vector = decode(blob)
                (bad.append(key) if vector is None else found.__setitem__(key, vector))
        if bad:
            with connection:
                connection.executemany("DELETE FROM entries WHERE key = ?", [(key,) for key in bad])
        return found

    @contextlib.contextmanager
    def _dropped_if_damaged(self, shard: str):
        """A shard file SQLite cannot read (damaged on disk) is deleted, and its entries are recomputed."""
        try:
            yield
        except sqlite3.OperationalError:  # locked, disk full, ...: not damage
            raise
        except sqlite3.DatabaseError as error:
            log.warning(
                "feature cache file %s is damaged (%s): deleted, its entries will be recomputed",
                self.shard_path(shard),
                error,
            )
            connection = self._connections.pop(shard, None)
            if connection is not None:
                connection.close()
            for path in self.root.glob(f"{self.shard_path(shard).name}*"):
                path.unlink(missing_ok=True)

    def get(self, key: str) -> np.ndarray | None:
        """The cached vector, or None when absent or corrupted."""
        return self.get_many([key]).get(key)

    def put_many(self, entries: Mapping[str, np.ndarray]) -> None:
        """Write entries, one transaction per shard: another reader sees all of a shard's new entries or none."""
        by_shard: dict[str, list[tuple[str, bytes]]] = {}
        for key, vector in entries.items():
            by_shard.setdefault(key[0], []).append((key, encode(vector)))
        with self._lock:
            for shard, rows in by_shard.items():
                for _ in range(2):  # a damaged file is dropped on the first try, then written anew
                    with self._dropped_if_damaged(shard):
                        with self._connection(shard) as connection:
                            connection.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", rows)
                        break

    def info(self) -> dict[str, int | str]:
        """Where the cache is, how many entries it holds and the size of its files."""
        shards = [shard for shard in SHARDS if self.shard_path(shard).exists()]
        entries = 0
        with self._lock:
            for shard in shards:
                with self._dropped_if_damaged(shard):
                    entries += self._connection(shard).execute("SELECT count(*) FROM entries").fetchone()[0]
        files = list(self.root.glob("features-*.sqlite*")) if self.root.exists() else []
        return {
            "path": str(self.root),
            "entries": entries,
            "files": len(files),
            "bytes": sum(path.stat().st_size for path in files),
        }

    def close(self) -> None:
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()

    def clear(self) -> int:
        """Delete every entry (and anything else under the cache's folder); returns how many entries there were."""
        count = int(self.info()["entries"])
        self.close()
        if self.root.exists():
            shutil.rmtree(self.root)
        return count
