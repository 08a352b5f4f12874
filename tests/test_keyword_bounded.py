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
    """The store's exact ranking of every match (BM25 on both stores: FTS5's on SQLite,
    Engram's SQL BM25 on PostgreSQL, here with every word counted in full)."""
    if isinstance(mem.store, sqlite_store.SQLiteStore):
        phrases = " OR ".join(f'"{w}"' for w in words)
        rows = mem.store._conn().execute(
            "SELECT r.id FROM fts f JOIN records r ON r.rowid = f.rowid WHERE fts MATCH ? AND r.user_id = ? "
            "ORDER BY bm25(fts, 1.0, 0.0), f.rowid",
            (f"owner : {sqlite_store.user_key(user)} AND text : ({phrases})", user),
        ).fetchall()
    else:
        from engramdb.stores.postgres import _bm25_sql, bm25_weights

        terms = [f"'{w}'" for w in words]
        with mem.store._connection() as conn:
            counts = {t: conn.execute("SELECT count(*) FROM keywords WHERE tsv @@ to_tsquery('english', %s) "
                                      "AND user_id = %s", (t, user)).fetchone()[0] for t in terms}
            total = conn.execute("SELECT count(*) FROM records WHERE user_id = %s", (user,)).fetchone()[0]
            ranked = conn.execute(
                _bm25_sql("SELECT rowid, tsv FROM keywords WHERE tsv @@ to_tsquery('english', %s) AND user_id = %s",
                          "TRUE"),
                [terms, bm25_weights(terms, counts, total), " | ".join(terms), user, None],
            ).fetchall()
            ids = dict(conn.execute("SELECT rowid, id FROM records WHERE rowid = ANY(%s)",
                                    ([row[0] for row in ranked],)).fetchall())
        return [ids[row[0]] for row in ranked]
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


def test_a_word_that_was_common_before_a_forget_is_counted_again(mem):
    """A word found common is remembered as common for a while (PostgreSQL); erasing the
    user's rows forgets that, or the word's new matches would be left out of the match."""
    mem.add([f"apple crate {i}" for i in range(60)], user_id="alice")
    mem.add("a banana boat", user_id="alice")
    assert len(keyword_ids(mem, "apple banana", limit=100)) >= 1  # counts apple: common
    mem.forget(user_id="alice")
    fresh = set(mem.add(["apple pie", "apple tart", "banana split"], user_id="alice").ids)
    assert set(keyword_ids(mem, "apple banana", limit=100)) == fresh


def test_a_narrowed_search_keeps_only_the_rows_that_pass_in_rank_order(mem):
    """The narrowing is part of the bounded ranking statement: ranked as the unnarrowed
    search, minus the rows the conditions reject."""
    from engramdb.stores.filters import parse

    mem.add([f"red boat number {i}" for i in range(8)], user_id="alice", metadata={"colour": "red"})
    mem.add([f"red red boat {i}" for i in range(8)], user_id="alice", metadata={"colour": "blue"})
    everything = mem.store.keyword_search(Scope("alice"), "red boat", [], 16)
    blue = mem.store.keyword_search(Scope("alice"), "red boat", parse({"metadata.colour": "blue"}), 4)
    records = mem.store.by_rowids([h.rowid for h in everything], Scope("alice"))
    expected = [h.rowid for h in everything if records[h.rowid].metadata["colour"] == "blue"][:4]
    assert [h.rowid for h in blue] == expected and len(expected) == 4


def test_postgresql_scores_are_bm25(pg_url):
    """PostgreSQL's keyword score is BM25 as FTS5 computes it (k1 1.2, b 0.75), with a
    match counted once per row and a row's length in distinct words against the
    candidates' mean: worked out by hand here for four short rows."""
    import math

    with Memory(pg_url, embedder=FakeEmbedder()) as mem:
        ids = mem.add(["red boat", "red red car", "blue boat sail harbour", "green bike"], user_id="alice").ids
        found = mem.store.keyword_search(Scope("alice"), "red boat", [], 10)
        records = mem.store.by_rowids([h.rowid for h in found], Scope("alice"))
        got = {records[h.rowid].id: h.score for h in found}
    idf = math.log(1 + (4 - 2 + 0.5) / (2 + 0.5))  # N = 4 rows; red and boat each in 2
    mean = (2 + 2 + 4) / 3  # distinct words of the three candidates ("red red car": red, car)

    def norm(length: int) -> float:
        return 2.2 / (1 + 1.2 * (0.25 + 0.75 * length / mean))

    assert set(got) == set(ids[:3])
    assert got[ids[0]] == pytest.approx(2 * idf * norm(2))
    assert got[ids[1]] == pytest.approx(idf * norm(2))
    assert got[ids[2]] == pytest.approx(idf * norm(4))
    assert [records[h.rowid].id for h in found] == [ids[0], ids[1], ids[2]]


def test_postgresql_estimates_a_common_words_count_from_its_statistics(pg_url, monkeypatch):
    """A word past the window is not counted in full: its count is PostgreSQL's own
    estimate (ANALYZE's share of rows holding it, times the user's rows), so its idf is
    that of a common word, not of one just past the window."""
    import engramdb.stores.postgres as postgres_store

    monkeypatch.setattr(postgres_store, "KEYWORD_WINDOW", 20)
    with Memory(pg_url, embedder=FakeEmbedder()) as mem:
        mem.add([f"apple crate {i}" for i in range(150)] + [f"pear box {i}" for i in range(50)], user_id="alice")
        store = mem.store
        with store._connection() as conn:
            assert store._term_counts(conn, "alice", ["'apple'", "'pear'"]) == {"'apple'": 21, "'pear'": 21}
            conn.execute("ANALYZE keywords")
            store._forget_counts(None)  # the counts and the word statistics remembered
            counts = store._term_counts(conn, "alice", ["'apple'", "'pear'", "'crate'"])
    assert counts["'apple'"] == pytest.approx(150, rel=0.1)
    assert counts["'pear'"] == pytest.approx(50, rel=0.1)
    assert counts["'crate'"] == pytest.approx(150, rel=0.1)
