"""Schema migrations: named, ordered, recorded; an older database is brought forward.

One runner (engramdb/stores/migrations.py) applies every list: the SQLite and PostgreSQL
stores' and the two key stores'. Here the runner itself and the SQLite store; the
PostgreSQL store's oldest schema in test_postgres.py, the key stores' in
test_server_keys*.py."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from engramdb import ConfigError, Memory, StorageError
from engramdb.providers.fake import FakeEmbedder
from engramdb.server.keys.postgres import MIGRATIONS as POSTGRES_KEY_MIGRATIONS
from engramdb.server.keys.sqlite import MIGRATIONS as SQLITE_KEY_MIGRATIONS
from engramdb.stores.migrations import check_numbering, migrate, pending, sqlite_target, statements
from engramdb.stores.postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS
from engramdb.stores.sqlite import SQLiteStore, content_hash, user_key
from engramdb.stores.sqlite_schema import MIGRATIONS
from engramdb.types import Scope

NAMES = [name for name, _ in MIGRATIONS]


class TickingClock:
    def __init__(self) -> None:
        self.at = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def now(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


def snapshot(path, tables: dict[str, list[str]] | None = None) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every row of every table (but the migrations' record), all columns, in key order;
    with `tables`, only those tables and columns (what an older schema had)."""
    with sqlite3.connect(path) as conn:
        if tables is None:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                                                "LIKE 'sqlite_%' AND name NOT LIKE 'fts_%' AND name != 'fts' AND "
                                                "name != 'schema_migrations' ORDER BY name")]
            tables = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in names}
        return {t: (cols, conn.execute(f"SELECT {', '.join(cols)} FROM {t} ORDER BY 1, 2").fetchall())
                for t, cols in tables.items()}


# -- the runner ---------------------------------------------------------------------------


@pytest.mark.parametrize("migrations", [MIGRATIONS, POSTGRES_MIGRATIONS, SQLITE_KEY_MIGRATIONS,
                                        POSTGRES_KEY_MIGRATIONS],
                         ids=["sqlite-store", "postgres-store", "sqlite-keys", "postgres-keys"])
def test_every_schema_is_numbered_from_0001_without_gaps(migrations):
    check_numbering(migrations)
    assert migrations[0][0].startswith("0001_")
    assert all(statements(script) for _, script in migrations)


@pytest.mark.parametrize("names", [["0001_a", "0003_c"], ["0001_a", "0001_b"], ["0002_a"], ["1_a"], ["0001_A"],
                                   ["0001-a"]])
def test_a_list_numbered_wrongly_is_refused_before_any_database(names):
    with pytest.raises(ValueError, match="expected"):
        check_numbering([(name, "SELECT 1;") for name in names])


def test_pending_names_the_migrations_a_newer_engram_wrote():
    steps = [("0001_a", ""), ("0002_b", "")]
    assert pending(set(), steps, owner="x") == steps
    assert pending({"0001_a"}, steps, owner="x") == steps[1:]
    assert pending({"0001_a", "0002_b"}, steps, owner="x") == []
    with pytest.raises(ConfigError, match=r"the db was written by a newer Engram \(migrations \['0003_c', '0009_z'\]\)"):
        pending({"0001_a", "0009_z", "0003_c"}, steps, owner="the db")


def test_runner_applies_what_is_missing_in_order_each_with_its_record(tmp_path):
    steps = [("0001_items", "CREATE TABLE items (x INTEGER);\nINSERT INTO items VALUES (1);\n"),
             ("0002_labels", "ALTER TABLE items ADD COLUMN label TEXT;\nUPDATE items SET label = 'one' WHERE x = 1\n")]
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    clock = TickingClock()

    def run(migrations) -> list[str]:
        conn.execute("BEGIN IMMEDIATE")
        done = migrate(sqlite_target(conn), migrations, owner="r.db", clock=clock)
        conn.execute("COMMIT")
        return done

    assert run(steps[:1]) == ["0001_items"]
    assert run(steps) == ["0002_labels"]
    assert run(steps) == []
    assert conn.execute("SELECT x, label FROM items").fetchall() == [(1, "one")]
    assert conn.execute("SELECT name, applied_at FROM schema_migrations ORDER BY name").fetchall() == [
        ("0001_items", "2024-01-01T00:00:01.000000Z"), ("0002_labels", "2024-01-01T00:00:02.000000Z")]
    conn.close()


def test_a_failing_migration_keeps_nothing_of_itself_nor_of_those_before_it(tmp_path, monkeypatch):
    """The runner works in its caller's transaction: a migration that fails takes back
    every migration applied with it and their records; the store stays as it was."""
    import engramdb.stores.sqlite as sqlite_store

    path = tmp_path / "m.db"
    make_old_database(path)
    before = snapshot(path)
    broken = MIGRATIONS + [(f"{len(MIGRATIONS) + 1:04d}_broken", "CREATE TABLE half (x INTEGER);\nSELECT nope FROM nowhere;\n")]
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", broken)
    with pytest.raises(StorageError, match="nothing was kept"):
        SQLiteStore(path)
    assert [name for name, _ in recorded(path)] == NAMES[:1]  # not even 0002..: one transaction
    assert snapshot(path) == before
    monkeypatch.undo()
    SQLiteStore(path).close()
    assert [name for name, _ in recorded(path)] == NAMES

    fresh = tmp_path / "fresh.db"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", broken)
    with pytest.raises(StorageError):
        SQLiteStore(fresh)
    with sqlite3.connect(fresh) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


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
    conn.execute("INSERT INTO meta (key, value) VALUES ('written_by', 'engramdb 0.0.1')")
    # every column the first schema had, filled: an agent, a name, metadata, an end of validity
    at, then = "2023-06-01T09:00:00.000000Z", "2023-06-02T09:00:00.000000Z"
    conn.execute(
        "INSERT INTO records (id, user_id, agent_id, session_id, kind, role, name, text, sources, metadata, "
        "created_at, valid_to, recorded_at, updated_at, content_hash) VALUES ('mem_old4', 'carol', 'planner', "
        "'s9', 'turn', 'assistant', 'Ada', 'we meet on Fridays', '[\"mem_old4\"]', '{\"topic\": \"meetings\"}', "
        "?, ?, ?, ?, ?)", (at, then, at, then, content_hash("we meet on Fridays")))
    conn.executemany(
        "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, reason) "
        "VALUES ('mem_old4', ?, 'carol', ?, ?, ?, ?, 'planner', ?)",
        [(1, "add", "we meet on Mondays", content_hash("we meet on Mondays"), at, None),
         (2, "update", None, content_hash("we meet on Fridays"), then, "moved")])
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
    before = snapshot(path)
    SQLiteStore(path).close()
    assert snapshot(path, {table: columns for table, (columns, _) in before.items()}) == before  # loses nothing
    assert len(before["records"][1]) == 4 and len(before["versions"][1]) == 5
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
    with pytest.raises(ConfigError, match=r"newer Engram \(migrations \['9999_from_the_future'\]\)"):
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
