"""Schema migrations: named, ordered, recorded; an older database is brought forward."""

from __future__ import annotations

import sqlite3

import pytest

from engramdb import ConfigError, Memory
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores.sqlite import content_hash, user_key
from engramdb.stores.sqlite_schema import MIGRATIONS
from engramdb.types import Scope

NAMES = [name for name, _ in MIGRATIONS]


def recorded(path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT name, applied_at FROM schema_migrations ORDER BY rowid").fetchall()


def test_migration_names_are_unique_and_ordered():
    assert len(NAMES) >= 2
    assert NAMES == sorted(NAMES) and len(set(NAMES)) == len(NAMES)
    assert all(name[:4].isdigit() for name in NAMES)


def test_fresh_database_records_every_migration_in_order(tmp_path):
    path = tmp_path / "fresh.db"
    with Memory(path, embedder=FakeEmbedder()) as memory:
        assert memory.store.applied_migrations() == NAMES
        assert memory.stats()["schema"] == NAMES
    rows = recorded(path)
    assert [name for name, _ in rows] == NAMES
    stamps = [at for _, at in rows]
    assert stamps == sorted(stamps)
    with Memory(path, embedder=FakeEmbedder()):  # reopening applies nothing twice
        pass
    assert recorded(path) == rows


def make_old_database(path) -> None:
    """A database as the first release wrote it: only MIGRATIONS[:1], rows added by hand."""
    conn = sqlite3.connect(path)
    conn.create_function("engram_user_key", 1, user_key, deterministic=True)
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, script in MIGRATIONS[:1]:
        conn.executescript(script)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, "2024-01-01T00:00:00.000000Z"))
    rows = [
        ("mem_old1", "alice", "s1", "I keep bees in my back garden", "2023-05-01T12:00:00.000000Z"),
        ("mem_old2", "alice", "s1", "my favourite colour is teal", "2023-05-01T12:01:00.000000Z"),
        ("mem_old3", "bob", None, "bob keeps bees too", "2023-05-02T12:00:00.000000Z"),
    ]
    for rid, user, session, text, at in rows:
        conn.execute(
            "INSERT INTO records (id, user_id, session_id, kind, role, text, sources, metadata, created_at, "
            "recorded_at, updated_at, content_hash) VALUES (?, ?, ?, 'turn', 'user', ?, ?, '{}', ?, ?, ?, ?)",
            (rid, user, session, text, f'["{rid}"]', at, at, at, content_hash(text)),
        )
        conn.execute(
            "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor) "
            "VALUES (?, 1, ?, 'add', NULL, ?, ?, ?)",
            (rid, user, content_hash(text), at, user),
        )
    conn.commit()
    conn.close()


def test_older_database_is_migrated_and_backfilled(tmp_path):
    path = tmp_path / "old.db"
    make_old_database(path)
    assert [name for name, _ in recorded(path)] == NAMES[:1]
    embedder = FakeEmbedder()
    with Memory(path, embedder=embedder) as memory:
        assert memory.store.applied_migrations() == NAMES
        assert memory.store.missing_vectors(10) != []  # nothing embedded yet
        old = memory.get("mem_old1", user_id="alice")
        assert (old.text, old.session_id, old.sources) == ("I keep bees in my back garden", "s1", ["mem_old1"])
        # keyword search works from the FTS backfill alone, scoped per user
        keyword = memory.store.keyword_search(Scope("alice"), "bees", [], 10)
        assert [memory.store.by_rowids([k.rowid], Scope("alice"))[k.rowid].id for k in keyword] == ["mem_old1"]
        hits = memory.search("bees garden", user_id="alice")
        assert hits[0].id == "mem_old1"
        assert "mem_old3" not in [h.id for h in hits]
        assert memory.store.missing_vectors(10) == []  # vectors backfilled on first use
        dense = memory.store.vector_search(Scope("alice"), embedder.embed(["favourite colour teal"])[0], [], 1)
        assert memory.store.by_rowids([dense[0].rowid], Scope("alice"))[dense[0].rowid].id == "mem_old2"
        assert memory.search("bees", user_id="bob")[0].id == "mem_old3"
        assert [v.text for v in memory.history("mem_old1")] == ["I keep bees in my back garden"]
        # and the migrated store keeps working for new writes
        (new,) = memory.add("new bees arrived", user_id="alice").records
        assert new.id in [h.id for h in memory.search("new bees", user_id="alice")]
    assert [name for name, _ in recorded(path)] == NAMES
    with Memory(path, embedder=FakeEmbedder()) as memory:
        assert memory.search("teal", user_id="alice")[0].id == "mem_old2"


def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "future.db"
    with Memory(path, embedder=FakeEmbedder()) as memory:
        memory.add("from today", user_id="alice")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES ('9999_from_the_future', '2099-01-01T00:00:00Z')")
    with pytest.raises(ConfigError, match="newer Engram"):
        Memory(path, embedder=FakeEmbedder())
    with sqlite3.connect(path) as conn:  # refused without touching anything
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(NAMES) + 1


def test_retirements_recorded_before_typed_links_become_links(tmp_path):
    """A store of schema 0004 named what retired a memory only in its history's reason;
    0005 turns those into `supersedes` / `retracts` links (and derivations into
    `derived_from` ones), and erasure follows them."""
    path = tmp_path / "v4.db"
    conn = sqlite3.connect(path)
    conn.create_function("engram_user_key", 1, user_key, deterministic=True)
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, script in MIGRATIONS[:4]:
        conn.executescript(script)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, "2024-01-01T00:00:00.000000Z"))
    at = "2024-01-01T00:00:00.000000Z"
    rows = [("t1", "turn", "I live in Oslo", None), ("t2", "turn", "I moved to Rome", None),
            ("t3", "turn", "Rex died", None), ("t4", "turn", "yes Rex died", None),
            ("oslo", "fact", "The user lives in Oslo", "2024-02-01T00:00:00.000000Z"),
            ("rome", "fact", "The user lives in Rome", None),
            ("rex", "fact", "The user has a dog named Rex", "2024-03-01T00:00:00.000000Z")]
    for id, kind, text, valid_to in rows:
        conn.execute("INSERT INTO records (id, user_id, kind, text, sources, created_at, valid_to, recorded_at, "
                     "updated_at, content_hash) VALUES (?, 'ann', ?, ?, ?, ?, ?, ?, ?, ?)",
                     (id, kind, text, f'["{id}"]', at, valid_to, at, at, content_hash(text)))
    for memory, turn in (("oslo", "t1"), ("rome", "t2"), ("rex", "t1")):
        conn.execute("INSERT INTO derivations (memory_id, turn_id, turn_sources, suffices) VALUES (?, ?, ?, 1)",
                     (memory, turn, f'["{turn}"]'))
    for memory, version, event, reason in (("oslo", 1, "add", None), ("oslo", 2, "supersede", "superseded by rome"),
                                           ("rome", 1, "add", None), ("rex", 1, "add", None),
                                           ("rex", 2, "retract", "retracted by t3, t4")):
        text = dict((r[0], r[2]) for r in rows)[memory]
        conn.execute("INSERT INTO versions (memory_id, version, user_id, event, content_hash, at, reason) "
                     "VALUES (?, ?, 'ann', ?, ?, ?, ?)", (memory, version, event, content_hash(text), at, reason))
    conn.commit()
    conn.close()
    with Memory(path, embedder=FakeEmbedder()) as mem:
        with sqlite3.connect(path) as raw:
            links = set(raw.execute("SELECT src, type, dst FROM links").fetchall())
        assert links == {("rex", "derived_from", "t1"), ("oslo", "derived_from", "t1"), ("rome", "derived_from", "t2"),
                         ("rome", "supersedes", "oslo"), ("t3", "retracts", "rex"), ("t4", "retracts", "rex")}
        mem.delete("t2")  # Rome goes with its turn: Oslo is true again
        assert mem.get("oslo").valid_to is None and [v.event for v in mem.history("oslo")][-1] == "reinstate"
        mem.delete("t3")  # one of the two retracting turns: Rex stays retracted
        assert mem.get("rex").valid_to is not None
        mem.delete("t4")
        assert mem.get("rex").valid_to is None
