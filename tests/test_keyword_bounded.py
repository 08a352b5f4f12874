"""Keyword search on a big user: bounded cost, rare words still reach old turns, never
another user's rows. KEYWORD_WINDOW is lowered so that a few hundred rows exercise it."""

from __future__ import annotations

import pytest

import engramdb.stores.sqlite as sqlite_store
from engramdb import Memory
from engramdb.providers.fake import FakeEmbedder
from engramdb.types import Scope


@pytest.fixture
def mem(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_store, "KEYWORD_WINDOW", 20)
    with Memory(tmp_path / "kw.db", embedder=FakeEmbedder()) as m:
        yield m


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


def test_below_the_window_it_is_exact_bm25_and_other_users_never_appear(mem):
    mem.add([f"bob's boat {i}" for i in range(300)], user_id="bob")
    mem.add(["a red boat", "a red red car", "a blue boat", "a green bike"], user_id="alice")
    exact = mem.store._conn().execute(
        "SELECT r.id FROM fts f JOIN records r ON r.rowid = f.rowid WHERE fts MATCH ? AND r.user_id = 'alice' "
        "ORDER BY bm25(fts, 1.0, 0.0), f.rowid",
        (f'owner : {sqlite_store.user_key("alice")} AND text : ("red" OR "boat")',),
    ).fetchall()
    assert keyword_ids(mem, "red boat") == [row[0] for row in exact]
    assert len(exact) == 3
    assert keyword_ids(mem, "boat", user="carol") == []
