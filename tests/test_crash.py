"""A writer killed with SIGKILL mid-ingest loses nothing it reported as stored, leaves a
sound database, and a stale or damaged HNSW cache beside it is caught up or rebuilt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engramdb import Config, Memory, NotFoundError, Scope
from engramdb.providers.fake import FakeEmbedder
from helpers_writer import integrity
from engramdb.stores.sqlite import user_key

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

HELPER = Path(__file__).with_name("helpers_writer.py")


def run_and_kill(args: list[str], seconds: float, min_lines: int = 3) -> list:
    """Start the helper, collect the complete lines it prints, SIGKILL it after
    `seconds` (and at least `min_lines` lines), and return them parsed."""
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 90  # a loaded CI machine starts Python slowly
    while len(lines) < min_lines and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(seconds)
    assert proc.poll() is None, f"the writer stopped by itself: {proc.stderr.read()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    reader.join(timeout=10)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(lines) >= min_lines
    # Only whole lines count: the last one may have been cut by the kill.
    return [json.loads(line) for line in lines if line.endswith("\n")]


@pytest.mark.parametrize("threshold", [None, "200"], ids=["exact", "hnsw"])
def test_killed_writer_loses_nothing_it_reported(tmp_path, threshold):
    db = tmp_path / "crash.db"
    reported: list[str] = []
    for round_, seconds in enumerate([0.0, 0.7, 1.4]):  # kill at different moments
        extra = [threshold] if threshold else []
        lines = run_and_kill(["loop", str(db), "u", f"r{round_}", *extra], seconds)
        assert all(len(ids) == 3 for ids in lines)
        reported += [rid for ids in lines for rid in ids]

        assert integrity(db) == "ok"
        config = Config(ann_threshold=int(threshold)) if threshold else Config()
        with Memory(db, config=config, embedder=FakeEmbedder()) as mem:
            for rid in reported:
                assert mem.get(rid, user_id="u").user_id == "u"
            # An add can have committed just before the kill, unreported: never fewer rows.
            assert mem.store.count(Scope("u")) >= len(reported)
            fresh = mem.add(f"after crash {round_} marmalade kettle", user_id="u").ids[0]
            hits = mem.search(f"after crash {round_} marmalade kettle", user_id="u", limit=3)
            assert hits[0].id == fresh
            # The oldest reported turn is still found by its vector (each text is unique).
            first = mem.get(reported[0])
            assert vector_top(mem, first.text, 1) == [first.seq]
        reported.append(fresh)
    assert integrity(db) == "ok"


def vector_top(mem: Memory, text: str, limit: int = 10) -> list[int]:
    vector = mem.embedder.embed([text])[0]
    return [hit.rowid for hit in mem.store.vector_search(Scope("u"), vector, [], limit)]


def seed_with_cache(db: Path, count: int = 300) -> Path:
    """A store past the threshold whose HNSW graph is saved beside it."""
    with Memory(db, config=Config(ann_threshold=200), embedder=FakeEmbedder()) as mem:
        mem.add([f"seed {i} topic{i % 29} lemma{i % 7}" for i in range(count)], user_id="u")
        vector_top(mem, "topic3")  # builds the mirror; the graph is built in the background
        assert mem.flush(timeout=60)  # ... and saved when it takes over
        assert mem.store._vectors.scope(user_key("u")).mode == "hnsw"
    cache = db.with_name(db.name + ".vectors") / f"{user_key('u')}.usearch"
    assert cache.exists()
    return cache


def assert_graph_agrees_with_exact(db: Path, deleted: set[str], live: list[str]) -> None:
    graph = Memory(db, config=Config(ann_threshold=200), embedder=FakeEmbedder())
    exact = Memory(db, config=Config(ann_threshold=10**9), embedder=FakeEmbedder())
    try:
        rows: dict[int, str] = {}
        while page := exact.list(user_id="u", limit=1000, offset=len(rows)):
            rows.update({r.seq: r.id for r in page})
        assert not deleted & set(rows.values())
        assert set(live) <= set(rows.values())
        for query in [f"topic{i}" for i in range(29)] + ["seed lemma3", "churn part"]:
            got_graph, got_exact = vector_top(graph, query, 20), vector_top(exact, query, 20)
            ids_graph = [rows[rowid] for rowid in got_graph]
            assert not deleted & set(ids_graph)
            # Fake vectors tie often: compare scores, and the ids where scores differ.
            assert len(got_graph) == len(got_exact) == 20
            vec = graph.embedder.embed([query])[0]
            scores = lambda rowids: np.sort(  # noqa: E731
                [float(np.dot(vec, graph.embedder.embed([graph.get(rows[r]).text])[0])) for r in rowids]
            )
            np.testing.assert_allclose(scores(got_graph), scores(got_exact), atol=1e-5)
        mirror = graph.store._vectors.scope(user_key("u"))
        # A damaged cache is rebuilt in the background while exact search serves.
        assert mirror.wait_for_build(60)
        assert mirror.mode == "hnsw" and mirror.size == len(rows)
    finally:
        graph.close()
        exact.close()


def test_killed_writer_with_saved_graph_leaves_a_cache_that_is_caught_up(tmp_path):
    db = tmp_path / "graph.db"
    seed_with_cache(db)
    lines = run_and_kill(["churn", str(db), "u", "c", "200"], 1.5, min_lines=6)
    deleted = {line["deleted"] for line in lines if isinstance(line, dict)}
    added = [rid for line in lines if isinstance(line, list) for rid in line]
    assert deleted and added
    assert integrity(db) == "ok"
    with Memory(db, embedder=FakeEmbedder()) as mem:
        for rid in deleted:
            with pytest.raises(NotFoundError):
                mem.get(rid)
    # The kill can land between a delete's commit and its report: the first id of the
    # last reported add may be gone without a "deleted" line.
    unsure = {[line for line in lines if isinstance(line, list)][-1][0]}
    assert_graph_agrees_with_exact(db, deleted, [rid for rid in added if rid not in deleted | unsure])


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage-middle", "garbage-all", "meta-missing"])
def test_damaged_graph_cache_is_rebuilt_not_an_error(tmp_path, damage):
    db = tmp_path / "damaged.db"
    cache = seed_with_cache(db)
    # Changes after the save, so a rebuild must also include them.
    with Memory(db, config=Config(ann_threshold=10**9), embedder=FakeEmbedder()) as mem:
        later = mem.add([f"later {i} topic{i}" for i in range(20)], user_id="u").ids
        gone = mem.list(user_id="u", limit=5)
        for record in gone:
            mem.delete(record.id, user_id="u")
    data = cache.read_bytes()
    if damage == "truncate":
        cache.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        cache.write_bytes(b"")
    elif damage == "garbage-middle":  # usearch itself loads this without complaint
        middle = len(data) // 2
        cache.write_bytes(data[:middle] + os.urandom(4096) + data[middle + 4096:])
    elif damage == "garbage-all":
        cache.write_bytes(os.urandom(len(data)))
    else:
        cache.with_suffix(".json").unlink()
    assert_graph_agrees_with_exact(db, {r.id for r in gone}, later)
    # The rebuilt graph is saved again, whole, on close.
    with Memory(db, config=Config(ann_threshold=200), embedder=FakeEmbedder()) as mem:
        vector_top(mem, "topic1")
        mirror = mem.store._vectors.scope(user_key("u"))
        assert mirror.mode == "hnsw" and mirror.size == 315
    assert cache.exists() and cache.with_suffix(".json").exists()
    meta = json.loads(cache.with_suffix(".json").read_text())
    assert meta["count"] == 315 and meta["bytes"] == cache.stat().st_size
