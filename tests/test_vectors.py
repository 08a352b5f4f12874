"""The in-process vector mirror: HNSW (usearch) must agree with exact search at small
sizes, follow removals and filters, promote itself past the threshold, and survive a
save and a reload (catching up with what was written after the save)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from engramdb import Config, Memory
from engramdb.stores.sqlite import user_key
from engramdb.stores.vectors import Delta, ScopeState, ScopeVectors
from engramdb.types import Scope

DIM = 64
N = 3000
QUERIES = 50
K = 10


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class Log:
    """What the store keeps for one user: vectors by id, and a log of removals."""

    def __init__(self) -> None:
        self.vectors: dict[int, np.ndarray] = {}
        self.removals: list[tuple[int, int]] = []  # (seq, vid)
        self.generation = 0
        self.next_id = 1
        self.loads: list[tuple[int, int]] = []

    def add(self, matrix: np.ndarray) -> list[int]:
        ids = []
        for row in matrix:
            self.vectors[self.next_id] = row
            ids.append(self.next_id)
            self.next_id += 1
        return ids

    def remove(self, ids) -> None:
        for vid in ids:
            del self.vectors[int(vid)]
            self.removals.append((len(self.removals) + 1, int(vid)))

    def state(self) -> ScopeState:
        return ScopeState(self.generation, len(self.removals))

    def load(self, after_key: int, after_seq: int) -> Delta:
        self.loads.append((after_key, after_seq))
        keys = np.array(sorted(k for k in self.vectors if k > after_key), dtype=np.int64)
        matrix = np.stack([self.vectors[int(k)] for k in keys]) if len(keys) else np.empty((0, DIM), np.float32)
        removed = [vid for seq, vid in self.removals if seq > after_seq]
        return Delta(keys, matrix, np.array(removed, dtype=np.int64), len(self.removals))

    def exact_top(self, query: np.ndarray, k: int, subset=None) -> list[int]:
        ids = np.array(sorted(self.vectors if subset is None else subset), dtype=np.int64)
        scores = np.stack([self.vectors[int(i)] for i in ids]) @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return ids[order].tolist()


class RandomEmbedder:
    """Unrelated random unit vectors seeded by the text: no ties, unlike word hashing."""

    name = "random-test-64"
    dim = DIM

    def embed(self, texts) -> np.ndarray:
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            out[row] = unit(np.random.default_rng(seed), 1)[0]
        return out


def mirror(log: Log, threshold: int, cache=None) -> ScopeVectors:
    vecs = ScopeVectors(DIM, threshold, cache)
    vecs.catch_up(log.state(), log.load)
    assert vecs.wait_for_build(timeout=60)  # past the threshold the graph builds in the background
    return vecs


def ids(found: list[tuple[int, float]]) -> list[int]:
    return [vid for vid, _ in found]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20240611)
    return unit(rng, N), unit(rng, QUERIES)


def test_hnsw_top10_is_identical_to_exact(data):
    matrix, queries = data
    log = Log()
    log.add(matrix)
    graph, exact = mirror(log, threshold=500), mirror(log, threshold=10**9)
    assert (graph.mode, exact.mode) == ("hnsw", "exact")
    assert graph.size == exact.size == N
    for q in queries:
        got, want = graph.search(q, K), exact.search(q, K)
        assert ids(got) == ids(want) == log.exact_top(q, K)
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_removal_in_both_modes(data):
    matrix, queries = data
    log = Log()
    log.add(matrix)
    graph, exact = mirror(log, threshold=500), mirror(log, threshold=10**9)
    # Remove exactly the current top hits of every query, plus a random third of the rest.
    doomed = {vid for q in queries for vid in log.exact_top(q, 3)}
    rng = np.random.default_rng(1)
    doomed |= set(rng.choice(sorted(set(log.vectors) - doomed), N // 3, replace=False).tolist())
    log.remove(sorted(doomed))
    for vecs in (graph, exact):
        vecs.catch_up(log.state(), log.load)
        assert vecs.size == N - len(doomed)
    for q in queries:
        got_graph, got_exact = ids(graph.search(q, K)), ids(exact.search(q, K))
        assert got_graph == got_exact == log.exact_top(q, K)
        assert not doomed & set(got_graph)
    # Asking for everything never brings a removed vector back.
    assert not doomed & set(ids(graph.search(queries[0], N)))
    assert not doomed & set(ids(exact.search(queries[0], N)))
    assert len(exact.search(queries[0], N)) == N - len(doomed)


@pytest.mark.parametrize("subset_size", [150, 1500])  # below the threshold (exact on the subset), above (over-fetch)
def test_filtered_search_matches_exact_over_the_subset(data, subset_size):
    matrix, queries = data
    log = Log()
    log.add(matrix)
    graph, exact = mirror(log, threshold=500), mirror(log, threshold=10**9)
    rng = np.random.default_rng(subset_size)
    allowed = np.sort(rng.choice(np.arange(1, N + 1), subset_size, replace=False)).astype(np.int64)
    for q in queries:
        want = log.exact_top(q, K, subset=allowed.tolist())
        assert ids(graph.search(q, K, allowed)) == want
        assert ids(exact.search(q, K, allowed)) == want
    # Removed ids inside the allowed set are never returned.
    gone = log.exact_top(queries[0], 5, subset=allowed.tolist())
    log.remove(gone)
    graph.catch_up(log.state(), log.load)
    got = ids(graph.search(queries[0], K, allowed))
    assert not set(gone) & set(got)
    assert got == log.exact_top(queries[0], K, subset=set(allowed.tolist()) - set(gone))
    assert graph.search(queries[0], K, np.array([], dtype=np.int64)) == []


def test_promotion_from_exact_to_hnsw_at_the_threshold(data):
    matrix, queries = data
    log = Log()
    log.add(matrix[:300])
    vecs = mirror(log, threshold=300)
    assert vecs.mode == "exact" and vecs.size == 300
    log.add(matrix[300:301])
    vecs.catch_up(log.state(), log.load)
    assert vecs.size == 301  # exact search serves while the graph is built
    assert vecs.wait_for_build(timeout=60)
    assert vecs.mode == "hnsw" and vecs.size == 301
    log.add(matrix[301:1000])
    vecs.catch_up(log.state(), log.load)
    assert vecs.size == 1000
    for q in queries[:20]:
        assert ids(vecs.search(q, K)) == log.exact_top(q, K)


def test_cache_is_saved_loaded_and_caught_up(tmp_path, data):
    matrix, queries = data
    cache = tmp_path / "cache" / "u1.usearch"
    log = Log()
    log.add(matrix[:2000])
    first = mirror(log, threshold=500, cache=cache)
    assert first.mode == "hnsw"
    first.save()
    assert cache.exists() and cache.with_suffix(".json").exists()

    # Written after the save: new rows and removals (of saved and of new rows).
    new_ids = log.add(matrix[2000:])
    doomed = [3, 4, 5] + new_ids[:5] + log.exact_top(queries[0], 2)
    log.remove(doomed)

    log.loads.clear()
    second = ScopeVectors(DIM, 500, cache)
    second.catch_up(log.state(), log.load)
    assert second.mode == "hnsw"
    assert log.loads == [(2000, 0)], "the mirror must start from the saved graph, not from scratch"
    assert second.size == N - len(doomed)
    for q in queries:
        got = ids(second.search(q, K))
        assert got == log.exact_top(q, K)
        assert not set(doomed) & set(got)


def test_cache_from_another_generation_is_rebuilt(tmp_path, data):
    matrix, queries = data
    cache = tmp_path / "u1.usearch"
    log = Log()
    log.add(matrix[:1000])
    first = mirror(log, threshold=500, cache=cache)
    first.save()
    # The scope is erased and refilled with other vectors: the saved graph is stale.
    log.remove(list(log.vectors))
    log.generation += 1
    log.vectors.clear()
    log.add(matrix[1000:2000])
    log.loads.clear()
    second = mirror(log, threshold=500, cache=cache)
    assert log.loads[-1][0] == 0, "a stale generation must be rebuilt from the store"
    assert second.size == 1000
    for q in queries[:20]:
        got = ids(second.search(q, K))
        assert got == log.exact_top(q, K)
        assert all(vid > 1000 for vid in got)


def test_corrupt_cache_file_is_rebuilt(tmp_path, data):
    matrix, queries = data
    cache = tmp_path / "u1.usearch"
    log = Log()
    log.add(matrix[:1000])
    mirror(log, threshold=500, cache=cache).save()
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 3])
    log.loads.clear()
    again = mirror(log, threshold=500, cache=cache)
    assert log.loads[0][0] == 0
    assert again.size == 1000
    assert ids(again.search(queries[0], K)) == log.exact_top(queries[0], K)


def test_store_vector_search_hnsw_equals_exact_and_cache_survives_reopen(tmp_path):
    """The same through SQLite: graph and exact mirrors of one file agree; the graph
    saved on close is reloaded and caught up with rows another writer added."""
    db = tmp_path / "m.db"
    texts = [f"note {i} about topic{i % 37}" for i in range(1200)]
    queries = [f"query {i}" for i in range(30)]
    embedder = RandomEmbedder()
    qvecs = embedder.embed(queries)
    scope = Scope("alice")

    def top(mem: Memory, vec: np.ndarray) -> list[int]:
        return [hit.rowid for hit in mem.store.vector_search(scope, vec, [], K)]

    graph = Memory(db, config=Config(ann_threshold=200), embedder=RandomEmbedder())
    graph.add(texts[:1000], user_id="alice")
    exact = Memory(db, config=Config(ann_threshold=10**6), embedder=RandomEmbedder())
    top(graph, qvecs[0])  # the first search starts the graph build
    assert graph.flush(timeout=60)
    for vec in qvecs:
        assert top(graph, vec) == top(exact, vec)
    assert graph.store._vectors.scope(user_key("alice")).mode == "hnsw"
    graph.close()
    cache = tmp_path / "m.db.vectors" / f"{user_key('alice')}.usearch"
    assert cache.exists()

    added = exact.add(texts[1000:], user_id="alice")  # after the save
    victim = top(exact, qvecs[0])[0]
    victim_id = exact.store.by_rowids([victim], scope)[victim].id
    exact.delete(victim_id, user_id="alice")

    reopened = Memory(db, config=Config(ann_threshold=200), embedder=RandomEmbedder())
    for vec in qvecs:
        got = top(reopened, vec)
        assert got == top(exact, vec)
        assert victim not in got
    mirror_ = reopened.store._vectors.scope(user_key("alice"))
    assert mirror_.mode == "hnsw" and mirror_.size == 1199
    assert {r.id for r in added} <= {r.id for r in reopened.list(user_id="alice", limit=1000, offset=200)}
    reopened.close()
    exact.close()


@pytest.mark.parametrize("rows", [0, 1, 1023, 1024, 1025, 2500])
def test_cosines_in_chunks_are_the_whole_product(rows):
    from engramdb.stores.vectors import cosines

    rng = np.random.default_rng(rows)
    matrix = rng.standard_normal((rows, 48)).astype(np.float32)
    query = rng.standard_normal(48).astype(np.float32)
    got = cosines(matrix, query)
    assert got.shape == (rows,) and got.dtype == np.float32
    np.testing.assert_allclose(got, matrix @ query, rtol=1e-6, atol=1e-6)
