"""Search latency at 10k-1M stored turns of one user, query embedding included.

Embedding a million turns with the real model would take hours on a small CPU, so the
stores are bulk-loaded with `PoolEmbedder`: a few thousand distinct synthetic turns are
embedded once with the real model, and every stored turn gets one of those real vectors
plus a little Gaussian noise. The timed queries then run through `Memory.search` with
the real default embedder. Stores are cached, so re-runs only search.

With `graph=True` every stored turn also gets its entity-graph edges (graph.py) as
distillation would give them: the phrases of the synthetic vocabulary it says (people,
places, months, activities, foods, pets, jobs, things), written through the store's
graph API (`Store.write_mentions`), and search walks them (`Config.graph_search`). Those
stores are built and searched with no extractor (nothing distils in the background
while searches are timed) and cached apart (`...-graph`).
"""

from __future__ import annotations

import gc
import json
import re
import shutil
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..graph import graph_ranking, phrase_keys
from ..keys import content_hash
from ..memory import Memory
from ..providers import Embedder, make_embedder
from ..providers.base import l2_normalize
from ..retrieval import rrf
from ..stores.base import Mention
from ..types import Scope
from . import synthetic
from .stats import current_rss_mb, latency_summary, peak_rss_mb

USER = "bench"
BULK_BATCH = 2000
WARMUP = 20
NOISE = 0.01  # per dimension: cosine to the pool vector is about 0.98 at 384 dims


class PoolEmbedder:
    """Bulk loading only: real vectors of a pool of texts, reused with noise.

    A text in the pool gets its own vector; any other text gets the vector of the pool
    entry its CRC32 picks. Each vector gets Gaussian noise (sigma `noise` per dimension)
    and is renormalised. It reports the real embedder's `name` and `dim`, so the store
    accepts the real embedder when it is reopened for queries.
    """

    def __init__(self, name: str, dim: int, texts: Sequence[str], vectors: np.ndarray,
                 noise: float = NOISE, seed: int = 0) -> None:
        self.name = name
        self.dim = dim
        self._vectors = np.asarray(vectors, dtype=np.float32)
        self._index = {text: i for i, text in enumerate(texts)}
        self._noise = noise
        self._rng = np.random.default_rng(seed)

    @property
    def pool_size(self) -> int:
        return len(self._vectors)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        size = len(self._vectors)
        rows = [self._index.get(t, zlib.crc32(t.encode()) % size) for t in texts]
        noisy = self._vectors[rows] + self._rng.normal(0.0, self._noise, (len(texts), self.dim)).astype(np.float32)
        return l2_normalize(noisy)


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def pool_embedder(real: Embedder, size: int, cache_dir: Path) -> tuple[PoolEmbedder, float | None]:
    """The pool's vectors from `real`, embedded once and cached as .npy."""
    texts = [m["content"] for m in synthetic.turns(size)]
    path = cache_dir / f"pool-{_slug(real.name)}-{size}.npy"
    embed_s = None
    if path.exists():
        vectors = np.load(path)
    else:
        _log(f"embedding a pool of {size} synthetic turns with {real.name}")
        started = time.perf_counter()
        vectors = np.concatenate([real.embed(texts[i:i + 256]) for i in range(0, size, 256)])
        embed_s = time.perf_counter() - started
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return PoolEmbedder(real.name, real.dim, texts, vectors), embed_s


# The nouns of the templates themselves (spaCy's noun chunks of them: "the vet", "my keys"):
# common phrases, as real chat has them beside its rare ones.
TEMPLATE_NOUNS = ("birthday dinner", "birthday", "vet", "trip", "new job", "keys", "office", "race", "class",
                  "shellfish", "daughter", "sister", "friend", "leg", "rainy week", "next session", "plans",
                  "suggestions", "spots", "stand", "weekend")


def _vocabulary() -> re.Pattern[str]:
    """The synthetic vocabulary's phrases as one pattern, longest first, whole words."""
    things = [t.split(" ", 1)[1] for t in synthetic.THINGS]  # "a new bike" -> "new bike"
    terms = [*synthetic.NAMES, *synthetic.PLACES, *synthetic.MONTHS, *synthetic.ACTIVITIES, *synthetic.FOODS,
             *synthetic.PETS, *synthetic.PET_NAMES, *synthetic.JOBS, *things, *TEMPLATE_NOUNS]
    alternatives = "|".join(re.escape(t) for t in sorted(set(terms), key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


VOCABULARY = _vocabulary()


def phrases(text: str) -> tuple[str, ...]:
    """A synthetic turn's graph phrases: the vocabulary entries it says, as graph keys
    (what the offline pipeline would note: its people, places, dates and nouns)."""
    return phrase_keys(VOCABULARY.findall(text))


def graph_edges(records) -> list[Mention]:
    """The entity-graph edges of stored synthetic turns, as distillation writes them."""
    return [Mention(r.id, content_hash(r.text), found) for r in records if (found := phrases(r.text))]


def bulk_add(mem: Memory, size: int, user: str = USER, *, graph: bool = False) -> None:
    """Add `size` synthetic turns for `user` through `mem.add`, `BULK_BATCH` at a time
    (`mem` is opened with a `PoolEmbedder`); with `graph`, write each batch's edges."""
    started = time.perf_counter()
    batch: list[dict] = []
    for index, message in enumerate(synthetic.turns(size)):
        batch.append(message)
        if len(batch) == BULK_BATCH or index == size - 1:
            added = mem.add(batch, user_id=user, session_id=f"s{index // BULK_BATCH}")
            if graph:
                mem.store.write_mentions(user, graph_edges(added.records))
            batch = []
            if (index + 1) % 100_000 < BULK_BATCH:
                rate = (index + 1) / (time.perf_counter() - started)
                _log(f"  {index + 1:>9,} turns stored ({rate:,.0f}/s)")


def build_store(path: Path, size: int, bulk: Embedder, config: Config, *, graph: bool = False) -> dict[str, Any]:
    """Add `size` synthetic turns for one user through `Memory.add`, `BULK_BATCH` at a time
    (with `graph`, and their entity-graph edges)."""
    marker = path.parent / "build.json"
    if marker.exists():
        return json.loads(marker.read_text())
    if path.parent.exists():
        shutil.rmtree(path.parent)  # an interrupted build
    path.parent.mkdir(parents=True)
    started = time.perf_counter()
    with Memory(path, config=config, embedder=bulk) as mem:
        bulk_add(mem, size, graph=graph)
        edges = mem.store.graph_size(USER) if graph else 0
    info = {
        "size": size,
        "bulk_load_s": round(time.perf_counter() - started, 1),
        "graph_edges": edges,
        "db_bytes": sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file()),
    }
    marker.write_text(json.dumps(info))
    return info


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def measure(path: Path, size: int, config: Config, queries: list[str], warmup: list[str], *,
            graph: bool = False) -> dict[str, Any]:
    """Open the store with the real embedder; time `Memory.search` and its parts (with
    `graph`, also the entity graph's read and walk, and searches with the walk on and off)."""
    scope = Scope(USER)
    graphs = path.with_name(path.name + ".vectors")
    before = {p.name: p.stat().st_mtime_ns for p in graphs.glob("*.usearch")}
    mem, open_s = _timed(lambda: Memory(path, config=config))
    try:
        _, prepare_s = _timed(lambda: mem.embedder)  # loads the model, checks the store
        _, first_s = _timed(lambda: mem.search(warmup[0], user_id=USER, limit=10))
        # A vector graph not saved yet is built in the background while exact search
        # serves; wait for it, so that the timed searches are those of a built index.
        _, build_wait_s = _timed(lambda: mem.store.flush(None))
        after = {p.name: p.stat().st_mtime_ns for p in graphs.glob("*.usearch")}
        graph_built = bool(after) and after != before  # a missing, stale or damaged cache is rebuilt
        for query in warmup[1:]:
            mem.search(query, user_id=USER, limit=10)

        totals = []
        for query in queries:
            _, took = _timed(lambda: mem.search(query, user_id=USER, limit=10))
            totals.append(took)

        depth = max(config.candidates, 20)
        parts: dict[str, list[float]] = {"embed": [], "vector": [], "keyword": [], "fetch": []}
        if graph:
            parts.update({"graph_read": [], "graph_walk": []})
        keyword_hits, graph_rows = [], []
        for query in queries:
            vector, took = _timed(lambda: mem.embedder.embed([query])[0])
            parts["embed"].append(took)
            dense, took = _timed(lambda: mem.store.vector_search(scope, vector, [], depth))
            parts["vector"].append(took)
            keyword, took = _timed(lambda: mem.store.keyword_search(scope, query, [], depth))
            parts["keyword"].append(took)
            keyword_hits.append(len(keyword))
            fused = rrf([dense, keyword], k=config.rrf_k)
            _, took = _timed(lambda: mem.store.by_rowids([item.rowid for item in fused[:10]], scope))
            parts["fetch"].append(took)
            if graph:  # what Memory._graph_walk does with the candidates' records
                records = mem.store.by_rowids(list({item.rowid: None for item in [*dense, *keyword]}), scope)
                said, took = _timed(lambda: mem.store.mentions(USER, [r.id for r in records.values()]))
                parts["graph_read"].append(took)
                edges = {rowid: said.get(r.id, ()) for rowid, r in records.items()}
                ranked, took = _timed(lambda: graph_ranking(query, fused, edges, sources={
                    rowid: r.sources for rowid, r in records.items()}))
                parts["graph_walk"].append(took)
                graph_rows.append(sum(1 for keys in edges.values() if keys))
        walk: dict[str, list[float]] = {"on": [], "off": []}
        if graph:  # the walk's share of a whole search: the same queries (vectors cached), on and off in turn
            on = mem.config
            try:
                for query in queries:
                    for state, switched in (("on", on), ("off", on.replace(graph_search=False))):
                        mem.config = switched
                        _, took = _timed(lambda: mem.search(query, user_id=USER, limit=10))
                        walk[state].append(took)
            finally:
                mem.config = on
        stored = mem.store.count(scope)
        rss = current_rss_mb()
    finally:
        mem.close()
    index = "hnsw" if stored > config.ann_threshold else "exact"
    return {
        "size": size,
        "stored": stored,
        "index": index,
        "open_s": round(open_s + prepare_s, 3),
        "first_search_s": round(first_s, 3),
        "index_build_wait_s": round(build_wait_s, 1),
        "first_search_note": (
            "loads all vectors from SQLite" + (
                "; builds the HNSW graph (saved for next time)" if graph_built else "; loads the saved HNSW graph"
            ) if index == "hnsw" else "loads all vectors from SQLite into the exact index"
        ),
        "search_ms": latency_summary(totals),
        "breakdown_ms": {name: latency_summary(values) for name, values in parts.items()},
        "keyword_candidates_mean": round(float(np.mean(keyword_hits)), 1),
        **({"graph_candidates_with_edges_mean": round(float(np.mean(graph_rows)), 1),
            "search_cached_vector_ms": {state: latency_summary(v) for state, v in walk.items()}} if graph else {}),
        "rss_mb_after": rss,
    }


def run(
    *,
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000),
    queries: int = 200,
    cache_dir: str | Path = ".bench",
    embedder: str = "minilm",
    pool: int = 10_000,
    graph: bool = False,
) -> dict[str, Any]:
    cache = Path(cache_dir)
    # With the graph, no extractor: the edges are written by the bulk load, and nothing
    # distils (or backfills the graph) in the background while searches are timed.
    config = Config(embedder=embedder, extractor="none") if graph else Config(embedder=embedder)
    real = make_embedder(config)
    bulk, pool_embed_s = pool_embedder(real, min(pool, max(sizes)), cache)
    del real
    asked = synthetic.questions(queries + WARMUP, seed=1)
    warmup, timed = asked[:WARMUP], asked[WARMUP:]
    results = []
    for size in sizes:
        path = cache / "search" / f"{_slug(bulk.name)}-{size}{'-graph' if graph else ''}" / "memory.db"
        _log(f"store of {size:,} turns at {path}")
        build = build_store(path, size, bulk, config, graph=graph)
        gc.collect()
        _log(f"searching {size:,} turns ({len(timed)} queries after {len(warmup)} warm-up)")
        result = measure(path, size, config, timed, warmup, graph=graph)
        result["bulk_load_s"] = build["bulk_load_s"]
        result["db_bytes"] = build["db_bytes"]
        if graph:
            result["graph_edges"] = build.get("graph_edges")
        result["peak_rss_mb_so_far"] = peak_rss_mb()
        _log(f"  {size:,}: {json.dumps(result['search_ms'])}; first search {result['first_search_s']} s; "
             f"parts p50 { {k: v['p50'] for k, v in result['breakdown_ms'].items()} }")
        results.append(result)
        gc.collect()
    return {
        "benchmark": "search",
        "embedder": bulk.name,
        "graph": graph,
        "pool": bulk.pool_size,
        "pool_embed_s": round(pool_embed_s, 1) if pool_embed_s is not None else "cached",
        "noise_sigma": NOISE,
        "queries": len(timed),
        "warmup": len(warmup),
        "limit": 10,
        "candidates": config.candidates,
        "ann_threshold": config.ann_threshold,
        "results": results,
        "peak_rss_mb": peak_rss_mb(),
    }
