"""Keyword search on a big user: bounded cost, rare words still reach old turns, never
another user's rows; both stores. KEYWORD_WINDOW is lowered so that a few hundred rows
exercise it."""

from __future__ import annotations

import pytest

import engramdb.stores.sqlite as sqlite_store
from engramdb import Memory
from engramdb.providers.fake import FakeEmbedder
from engramdb.types import Scope


@pytest.fixture(params=["sqlite", "postgresql"])
def mem(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        monkeypatch.setattr(sqlite_store, "KEYWORD_WINDOW", 20)
        store = tmp_path / "kw.db"
    else:
        import engramdb.stores.postgres as postgres_store

        monkeypatch.setattr(postgres_store, "KEYWORD_WINDOW", 20)
        store = request.getfixturevalue("pg_url")
    with Memory(store, embedder=FakeEmbedder()) as m:
        yield m


def exact_ids(mem: Memory, words: list[str], user: str) -> list[str]:
    """The store's exact ranking of every match (BM25 on SQLite, ts_rank_cd on PostgreSQL)."""
    if isinstance(mem.store, sqlite_store.SQLiteStore):
        phrases = " OR ".join(f'"{w}"' for w in words)
        rows = mem.store._conn().execute(
            "SELECT r.id FROM fts f JOIN records r ON r.rowid = f.rowid WHERE fts MATCH ? AND r.user_id = ? "
            "ORDER BY bm25(fts, 1.0, 0.0), f.rowid",
            (f"owner : {sqlite_store.user_key(user)} AND text : ({phrases})", user),
        ).fetchall()
    else:
        with mem.store._connection() as conn:
            rows = conn.execute(
                "SELECT r.id FROM keywords k JOIN records r ON r.rowid = k.rowid, to_tsquery('english', %s) q "
                "WHERE k.tsv @@ q AND k.user_id = %s ORDER BY ts_rank_cd(k.tsv, q, 1) DESC, k.rowid DESC",
                (" | ".join(f"'{w}'" for w in words), user),
            ).fetchall()
    return [row[0] for row in rows]


def keyword_ids(mem: Memory, query: str, user: str = "alice", limit: int = 10) -> list[str]:
    found = mem.store.keyword_search(Scope(user), query, [], limit)
    records = mem.store.by_rowids([hit.rowid for hit in found], Scope(user))
    return [records[hit.rowid].id for hit in found]


def test_a_rare_word_finds_an_old_turn_past_the_window(mem):
    old = mem.add("we sailed to zanzibar on a boat", user_id="alice").ids[0]
    mem.add([f"another boat trip number {i}" for i in range(200)], user_id="alice")
    assert keyword_ids(mem, "zanzibar boat")[0] == old


def test_only_common_words_rank_the_newest_matches(mem):
    mem.add([f"boat trip number {i}" for i in range(100)], user_id="alice")
    newest = mem.list(user_id="alice", limit=100)[-20:]
    found = keyword_ids(mem, "boat trip", limit=50)
    assert len(found) == 20 and set(found) == {r.id for r in newest}


def test_below_the_window_it_is_exact_and_other_users_never_appear(mem):
    mem.add([f"bob's boat {i}" for i in range(300)], user_id="bob")
    mem.add(["a red boat", "a red red car", "a blue boat", "a green bike"], user_id="alice")
    exact = exact_ids(mem, ["red", "boat"], "alice")
    assert keyword_ids(mem, "red boat") == exact
    assert len(exact) == 3
    assert keyword_ids(mem, "boat", user="carol") == []


def test_a_narrow_search_past_the_window_falls_back_to_every_match(mem):
    mem.add([f"boat trip number {i}" for i in range(100)], user_id="alice", session_id="s1")
    old = mem.add("the first boat", user_id="alice", session_id="s2").ids[0]
    mem.add([f"boat trip again {i}" for i in range(100)], user_id="alice", session_id="s3")
    found = mem.store.keyword_search(Scope("alice", session_id="s2"), "boat", [], 3)
    assert [r.id for r in mem.store.by_rowids([h.rowid for h in found], Scope("alice")).values()] == [old]
