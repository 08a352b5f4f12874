"""In-process vector search over one user's vectors, kept in step with the store.

The store's `vectors` table is the truth. Each user's vectors are mirrored in memory:
exact (a NumPy matrix) while the user has at most `ann_threshold` vectors, an HNSW
graph (usearch) above that. usearch was chosen over hnswlib (no removals without
rebuilds, unmaintained since 2023) and sqlite-vec (brute force only in 0.1.x): it
supports removal, filtered lookups by key, saving and memory-mapped loading.

The mirror catches up by three numbers the store keeps per user: `generation`
(bumped when the whole scope is erased), the highest vector id seen (`watermark`) and
the last removal sequence applied. The HNSW graph is saved beside the database file
as a cache; a stale or broken cache is caught up or rebuilt, never trusted blindly.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ScopeState:
    generation: int
    removal_seq: int


@dataclass
class Delta:
    """What changed for one user since a mirror's position."""

    keys: np.ndarray  # new vector ids (int64)
    matrix: np.ndarray  # their vectors (float32, rows unit length)
    removed: np.ndarray  # removed vector ids
    removal_seq: int


class _Exact:
    def __init__(self, dim: int) -> None:
        self.keys = np.empty(0, dtype=np.int64)
        self.matrix = np.empty((0, dim), dtype=np.float32)
        self.size = 0
        self.live = 0

    def add(self, keys: np.ndarray, matrix: np.ndarray) -> None:
        need = self.size + len(keys)
        if self.size == 0 and matrix.flags.c_contiguous and matrix.flags.writeable and matrix.dtype == np.float32:
            # A first load is adopted, not copied: at 1M vectors that is 1.5 GB saved.
            self.keys, self.matrix = np.array(keys, dtype=np.int64), matrix
            self.size = self.live = len(keys)
            return
        if need > len(self.keys):
            capacity = max(need, 2 * len(self.keys), 1024)
            grown_keys = np.full(capacity, -1, dtype=np.int64)
            grown_keys[: self.size] = self.keys[: self.size]
            self.keys = grown_keys
            grown = np.zeros((capacity, self.matrix.shape[1]), dtype=np.float32)
            grown[: self.size] = self.matrix[: self.size]
            self.matrix = grown
        self.keys[self.size:need] = keys
        self.matrix[self.size:need] = matrix
        self.size = need
        self.live += len(keys)

    def remove(self, keys: np.ndarray) -> None:
        mask = np.isin(self.keys[: self.size], keys)
        self.live -= int(mask.sum())
        self.keys[: self.size][mask] = -1
        self.matrix[: self.size][mask] = 0.0

    def all_keys(self) -> np.ndarray:
        keys = self.keys[: self.size]
        return keys[keys >= 0]

    def subset(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of those of `keys` that are here, with their keys."""
        mask = np.isin(self.keys[: self.size], keys)
        return self.keys[: self.size][mask], self.matrix[: self.size][mask]

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = cosines(self.matrix[: self.size], query)
        scores[self.keys[: self.size] < 0] = -np.inf
        return _top(self.keys[: self.size], scores, k)

    def search_many(self, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """`search` for each row of `queries`, reading the matrix once for all of them."""
        scores = self.matrix[: self.size] @ queries.T
        scores[self.keys[: self.size] < 0] = -np.inf
        return [_top(self.keys[: self.size], np.ascontiguousarray(scores[:, i]), k) for i in range(len(queries))]


# Measured on 3,000 random unit vectors (50 queries, top-10, 8 seeds): connectivity 16
# with expansion 128 missed true neighbours in 5% (64 dims) to 66% (384 dims) of queries;
# connectivity 32 with expansion_search 256 missed none at 64 dims, 0.5% at 384 dims.
CONNECTIVITY = 32
EXPANSION_ADD = 128
EXPANSION_SEARCH = 256
BUILD_CHUNK = 2_000  # vectors per usearch call while building: the build stops between two

# Background builds stop at interpreter exit (a thread inside usearch at shutdown
# aborts the process); the graph is only a cache, rebuilt next time.
_EXITING = threading.Event()
_BUILDERS: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()


@atexit.register
def _stop_builds() -> None:
    _EXITING.set()
    for thread in list(_BUILDERS):
        thread.join(timeout=30)


class _Graph:
    def __init__(self, dim: int, path: Path | None = None) -> None:
        from ..providers.onnx import import_before_usearch

        import_before_usearch()
        from usearch.index import Index

        self.index = Index(
            ndim=dim, metric="ip", dtype="f32", connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD,
            expansion_search=EXPANSION_SEARCH,
        )
        if path is not None:
            self.index.load(str(path))

    @property
    def live(self) -> int:
        return len(self.index)

    def add(self, keys: np.ndarray, matrix: np.ndarray) -> None:
        if len(keys):
            # One thread: usearch 2.26's parallel insertion left nodes that no search
            # reaches (missed even with expansion_search = the whole graph); serial
            # insertion is also deterministic, and barely slower on two cores.
            self.index.add(keys, matrix, threads=1)

    def remove(self, keys: np.ndarray) -> None:
        present = [int(k) for k in keys if int(k) in self.index]
        if present:
            self.index.remove(present)

    def all_keys(self) -> np.ndarray:
        return np.asarray(self.index.keys, dtype=np.int64)

    def subset(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = np.intersect1d(keys, self.all_keys())
        if len(keys) == 0:
            return keys, np.empty((0, self.index.ndim), dtype=np.float32)
        return keys, np.asarray(self.index.get(keys), dtype=np.float32).reshape(len(keys), -1)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.index))
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        self.index.expansion_search = max(EXPANSION_SEARCH, 2 * k)
        found = self.index.search(query, k)
        return np.asarray(found.keys, dtype=np.int64), 1.0 - np.asarray(found.distances, dtype=np.float32)


SCORE_ROWS = 1024  # rows per matrix-vector product (see `cosines`)


def cosines(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """`matrix @ query`, SCORE_ROWS rows at a time: the same numbers, computed on the
    calling thread. NumPy's OpenBLAS spreads one product of more rows over its threads,
    which on a busy 2-core machine made it 5-25x slower (a 6,000-row product: 5.1 ms
    against 1.0 ms) and spun CPU that the embedder needed: the notes lane runs one per
    memory it links (issue 14, docs/benchmarks.md "Ingest speed (issue 14)")."""
    out = np.empty(len(matrix), dtype=np.float32)
    for start in range(0, len(matrix), SCORE_ROWS):
        np.dot(matrix[start:start + SCORE_ROWS], query, out=out[start:start + SCORE_ROWS])
    return out


def _top(keys: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, len(scores))
    if k == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    part = np.argpartition(-scores, k - 1)[:k]
    part = part[np.isfinite(scores[part])]
    order = part[np.argsort(-scores[part], kind="stable")]
    return keys[order], scores[order]


def _checksum(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


class ScopeVectors:
    """One user's vectors in memory, with its position in the store's change log.

    Past `ann_threshold` vectors the HNSW graph is built in a background thread while
    exact search goes on serving; the graph takes over when it has caught up."""

    def __init__(self, dim: int, ann_threshold: int, cache_path: Path | None) -> None:
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.cache_path = cache_path
        self.lock = threading.Lock()
        self.state: ScopeState | None = None
        self.watermark = 0
        self.unsaved = 0
        self.removed = 0  # vectors removed from the graph since it was built: usearch keeps their bytes
        self.impl: _Exact | _Graph = _Exact(dim)
        self._builder: threading.Thread | None = None
        self._epoch = 0  # bumped by reset(): a build started before it is thrown away

    def catch_up(self, state: ScopeState, load: Callable[[int, int], Delta]) -> None:
        """Bring the mirror to `state`; `load(after_key, after_removal)` reads changes.
        Call with `lock` held."""
        if self.state is None:
            self._open_cache(state)
        if self.state is not None and self.state.generation != state.generation:
            self.reset()
        delta = load(self.watermark, self.state.removal_seq if self.state else 0)
        if len(delta.removed):
            self.impl.remove(delta.removed)
            if isinstance(self.impl, _Graph):
                self.removed += len(delta.removed)
        if len(delta.keys):
            self.impl.add(delta.keys, delta.matrix)
            self.watermark = int(delta.keys.max())
            self.unsaved += len(delta.keys)
        self.unsaved += len(delta.removed)
        self.state = ScopeState(state.generation, max(delta.removal_seq, state.removal_seq))
        if isinstance(self.impl, _Exact) and self.impl.live > self.ann_threshold and self._builder is None:
            self._builder = threading.Thread(
                target=self._build, args=(self.impl, self._epoch), name="engram-hnsw-build", daemon=True
            )
            _BUILDERS.add(self._builder)
            self._builder.start()

    def _build(self, exact: _Exact, epoch: int) -> None:
        """Build a graph from `exact` without holding the lock, then swap it in."""
        graph = _Graph(self.dim)
        keys, matrix, size = exact.keys, exact.matrix, exact.size  # appends go past `size`
        for start in range(0, size, BUILD_CHUNK):
            if _EXITING.is_set() or epoch != self._epoch:
                return
            stop = min(start + BUILD_CHUNK, size)
            chunk = keys[start:stop]
            live = chunk >= 0
            graph.add(chunk[live], matrix[start:stop][live])
        with self.lock:
            if epoch != self._epoch or self.impl is not exact:
                return
            # Catch up with what changed while building: ids are never reused, so the
            # difference of the two key sets is exactly what was added and removed.
            built, current = graph.all_keys(), exact.all_keys()
            gone = np.setdiff1d(built, current, assume_unique=True)
            graph.remove(gone)
            self.removed = len(gone)
            missing = np.setdiff1d(current, built, assume_unique=True)
            if len(missing):
                graph.add(*exact.subset(missing))
            self.impl = graph
            self.unsaved += 1
            self._builder = None
            self.save()

    def wait_for_build(self, timeout: float | None = None) -> bool:
        """Wait for a background graph build; True when none is running."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
            return not builder.is_alive()
        return True

    def reset(self) -> None:
        self.impl = _Exact(self.dim)
        self.state = None
        self.watermark = 0
        self.unsaved = 0
        self.removed = 0
        self._epoch += 1
        self._builder = None
        if self.cache_path is not None:
            for path in (self.cache_path, self.cache_path.with_suffix(".json")):
                path.unlink(missing_ok=True)

    def _open_cache(self, state: ScopeState) -> None:
        path = self.cache_path
        if path is None or not path.exists():
            return
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            if meta["generation"] != state.generation or meta["dim"] != self.dim:
                raise ValueError("cache from another generation")
            # usearch loads a file damaged in the middle without complaint, then fails
            # (or answers wrongly) at search time: check the bytes first.
            if path.stat().st_size != meta["bytes"] or _checksum(path) != meta["crc32"]:
                raise ValueError("cache file damaged")
            graph = _Graph(self.dim, path)
            if len(graph.index) != meta["count"]:
                raise ValueError("cache count mismatch")
        except (OSError, ValueError, KeyError, RuntimeError):
            self.reset()
            return
        self.impl = graph
        self.removed = int(meta.get("removed", 1))  # a cache saved before this was counted: assume some
        self.watermark = int(meta["watermark"])
        self.state = ScopeState(meta["generation"], int(meta["removal_seq"]))

    def save(self) -> None:
        """Write the HNSW graph beside the database (atomically), if it has changed."""
        if self.cache_path is None or not isinstance(self.impl, _Graph) or not self.unsaved or self.state is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(".tmp")
        self.impl.index.save(str(tmp))
        meta = {
            "generation": self.state.generation,
            "removal_seq": self.state.removal_seq,
            "watermark": self.watermark,
            "count": len(self.impl.index),
            "removed": self.removed,
            "dim": self.dim,
            "bytes": tmp.stat().st_size,
            "crc32": _checksum(tmp),
        }
        meta_tmp = self.cache_path.with_suffix(".json.tmp")
        meta_tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.cache_path)
        os.replace(meta_tmp, self.cache_path.with_suffix(".json"))
        self.unsaved = 0

    @property
    def mode(self) -> str:
        return "hnsw" if isinstance(self.impl, _Graph) else "exact"

    @property
    def size(self) -> int:
        return self.impl.live

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-k (vector id, cosine) pairs; restricted to `allowed` ids when given."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if allowed is not None:
            if isinstance(self.impl, _Exact) or len(allowed) <= self.ann_threshold:
                keys, matrix = self.impl.subset(allowed)
                keys, scores = _top(keys, cosines(matrix, query), k)
                return list(zip(keys.tolist(), scores.tolist()))
            # A broad filter on a big scope: over-fetch from the graph, then filter.
            fetch = k * 4
            while True:
                keys, scores = self.impl.search(query, fetch)
                keep = np.isin(keys, allowed)
                if keep.sum() >= k or fetch >= self.impl.live:
                    return list(zip(keys[keep][:k].tolist(), scores[keep][:k].tolist()))
                fetch *= 4
        keys, scores = self.impl.search(query, k)
        return list(zip(keys.tolist(), scores.tolist()))

    def search_many(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """`search` (unrestricted) for each row of `queries`: exact search reads the
        matrix once for all of them."""
        queries = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)
        if isinstance(self.impl, _Exact):
            found = self.impl.search_many(queries, k)
        else:
            found = [self.impl.search(query, k) for query in queries]
        return [list(zip(keys.tolist(), scores.tolist())) for keys, scores in found]


class VectorCache:
    """The mirrors of recently searched users, least recently used dropped first."""

    def __init__(self, dim: int, ann_threshold: int, cache_dir: Path | None, max_scopes: int = 64) -> None:
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.cache_dir = cache_dir
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[str, ScopeVectors] = OrderedDict()
        self._lock = threading.Lock()

    def scope(self, user_key: str) -> ScopeVectors:
        with self._lock:
            found = self._scopes.get(user_key)
            if found is None:
                path = self.cache_dir / f"{user_key}.usearch" if self.cache_dir else None
                found = ScopeVectors(self.dim, self.ann_threshold, path)
                self._scopes[user_key] = found
                while len(self._scopes) > self.max_scopes:
                    _, dropped = self._scopes.popitem(last=False)
                    with dropped.lock:
                        dropped.save()
            self._scopes.move_to_end(user_key)
            return found

    def discard(self, user_key: str) -> None:
        """Forget a user's mirror and delete its saved graph."""
        with self._lock:
            found = self._scopes.pop(user_key, None)
        if found is not None:
            with found.lock:
                found.reset()
        elif self.cache_dir is not None:
            ScopeVectors(self.dim, self.ann_threshold, self.cache_dir / f"{user_key}.usearch").reset()

    def drop_erased(self) -> int:
        """Discard every graph, in memory and saved, that still holds the bytes of removed
        vectors (usearch marks a removal, it does not overwrite): they are rebuilt from the
        store's live vectors on the next search, exact search serving meanwhile. Returns
        how many were dropped."""
        with self._lock:
            loaded = dict(self._scopes)
        dropped = 0
        for user_key, item in loaded.items():
            with item.lock:
                if item.removed:
                    item.reset()
                    dropped += 1
        if self.cache_dir is not None and self.cache_dir.exists():
            for meta_path in self.cache_dir.glob("*.json"):
                if meta_path.stem in loaded:
                    continue
                try:
                    removed = int(json.loads(meta_path.read_text()).get("removed", 1))
                except (OSError, ValueError, AttributeError):
                    removed = 1
                if removed:
                    ScopeVectors(self.dim, self.ann_threshold, meta_path.with_suffix(".usearch")).reset()
                    dropped += 1
        return dropped

    def wait_for_builds(self, timeout: float | None = None) -> bool:
        with self._lock:
            scopes = list(self._scopes.values())
        return all(item.wait_for_build(timeout) for item in scopes)

    def save_all(self) -> None:
        with self._lock:
            scopes = list(self._scopes.values())
        for item in scopes:
            with item.lock:
                item.save()
