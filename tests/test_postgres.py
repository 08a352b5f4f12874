"""PostgreSQL beyond the store contract: Memory end to end, tenant schemas, concurrent
writers, the HNSW path, migrations and typed errors. Against the session's real server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading

import numpy as np
import psycopg
import pytest

from engramdb import Memory
from engramdb.errors import ConfigError, MissingDependencyError, NotFoundError, StorageError
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores import tenant_slug
from engramdb.stores.filters import parse
from engramdb.stores.postgres import PostgresStore, ts_query
from engramdb.stores.postgres_schema import MIGRATIONS
from engramdb.types import Scope
from test_store_contract import new, put


def _schemas(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace")}


def test_memory_end_to_end(pg_url, tmp_path, fake_embedder):
    with Memory(pg_url, embedder=fake_embedder) as mem:
        added = mem.add(
            [{"role": "user", "content": "I moved to Lisbon in May", "name": "Alice"},
             {"role": "assistant", "content": "Lisbon is lovely in spring"}],
            user_id="alice", session_id="s1", metadata={"topic": "travel"},
        )
        mem.add("My dog is called Pixel", user_id="alice", session_id="s2")
        mem.add("bob's secret is 42", user_id="bob")
        first = added.ids[0]
        hits = mem.search("where did Alice move to?", user_id="alice")
        assert hits[0].id == first
        assert "bob's secret is 42" not in [h.text for h in mem.search("secret", user_id="alice")]
        assert [h.text for h in mem.search("dog", user_id="alice", filters={"session_id": "s2"})] == [
            "My dog is called Pixel"
        ]
        assert mem.get(first).metadata == {"topic": "travel"}
        with pytest.raises(NotFoundError):
            mem.get(first, user_id="bob")

        mem.update(first, "I moved to Porto in May", user_id="alice", reason="correction")
        assert mem.get(first).text == "I moved to Porto in May"
        assert [h.id for h in mem.search("Porto", user_id="alice")][:1] == [first]
        assert [(v.event, v.text) for v in mem.history(first, user_id="alice")] == [
            ("add", "I moved to Lisbon in May"), ("update", "I moved to Porto in May")
        ]
        with pytest.raises(NotFoundError):
            mem.history(first, user_id="bob")

        cube = tmp_path / "alice.jsonl"
        assert mem.export(cube, user_id="alice") == 3
        second = added.ids[1]
        mem.delete(second, user_id="alice")
        with pytest.raises(NotFoundError):
            mem.get(second)
        tomb = mem.history(second)
        assert [v.event for v in tomb] == ["add", "delete"] and all(v.text is None for v in tomb)
        assert tomb[-1].content_hash == hashlib.sha256(b"Lisbon is lovely in spring").hexdigest()
        mem.store.compact()  # VACUUM, outside any transaction
        with psycopg.connect(pg_url) as conn:  # the erased text is in no live row of any table
            assert conn.execute(
                "SELECT count(*) FROM engram.records WHERE text LIKE '%lovely%'"
            ).fetchone()[0] == 0
            assert conn.execute(
                "SELECT count(*) FROM engram.versions WHERE text LIKE '%lovely%'"
            ).fetchone()[0] == 0

        stats = mem.stats()
        assert (stats["records"], stats["users"], stats["embedder"]) == (3, 2, fake_embedder.name)
        assert stats["schema"] == [name for name, _ in MIGRATIONS]
        assert mem.forget(user_id="alice") == 2
        assert mem.list(user_id="alice") == [] and mem.search("Porto", user_id="alice") == []
        assert mem.import_(cube) == 3
        assert mem.get(first).text == "I moved to Porto in May"
        assert [v.event for v in mem.history(first)] == ["add", "update"]
        assert [h.id for h in mem.search("Porto", user_id="alice")][:1] == [first]
        assert mem.flush() is True
    # Reopened: everything is where it was (durable, same schema).
    with Memory(pg_url, embedder=fake_embedder) as again:
        assert again.get(first).text == "I moved to Porto in May"
        assert again.stats()["records"] == 4


def test_hnsw_index_follows_the_embedder(pg_url):
    with Memory(pg_url, embedder=FakeEmbedder(dim=32)) as mem:
        mem.add(["alpha beta", "gamma delta"], user_id="u")
        assert mem.store._read_indexed_dim() == 32
    # Another embedder: vectors are re-made in the new dimension, the index rebuilt.
    with Memory(pg_url, embedder=FakeEmbedder(dim=48), reembed=True) as mem:
        assert mem.search("gamma delta", user_id="u")[0].text == "gamma delta"
        assert mem.store._read_indexed_dim() == 48
        assert mem.store.missing_vectors(10) == []
    with Memory(pg_url, embedder=FakeEmbedder(dim=32)) as mem, pytest.raises(ConfigError, match="reembed"):
        mem.search("x", user_id="u")


def test_ann_path_keeps_scope_and_filters(postgres_url):
    """Past ann_threshold, search goes through the HNSW index (iterative scan), and still
    returns only the scope's rows, nearest first."""
    emb = FakeEmbedder(dim=32)
    store = PostgresStore(postgres_url, schema="test_ann_path", ann_threshold=0)
    try:
        store.reset()
        store.set_embedder_name(emb.name, emb.dim)
        recs = [new(f"note number {i} about topic {i % 7}", user="alice" if i % 3 else "bob",
                    session=f"s{i % 2}") for i in range(300)]
        store.insert(recs, emb.embed([r.text for r in recs]), actor=None)
        target = recs[10]  # alice, s0
        q = emb.embed([target.text])[0]
        found = store.vector_search(Scope("alice"), q, [], 5)
        got = store.by_rowids([h.rowid for h in found], Scope("alice"))
        assert len(found) == 5 and len(got) == 5
        assert got[found[0].rowid].id == target.id
        assert found[0].score == pytest.approx(1.0, abs=1e-5)
        assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)
        narrowed = store.vector_search(Scope("alice", session_id="s1"), q, parse({"kind": "turn"}), 50)
        assert len(narrowed) == 50
        rows = store.by_rowids([h.rowid for h in narrowed], Scope("alice", session_id="s1"))
        assert len(rows) == 50  # every hit inside the scope
        with store._connection() as conn, conn.transaction():
            conn.execute("ANALYZE records")
            conn.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN SELECT rowid FROM records r ORDER BY r.vec <=> %s LIMIT 5", [q]
            ))
        assert "records_vec_hnsw" in plan
    finally:
        store.close()


def test_keyword_query_ors_the_words_of_a_question():
    assert ts_query("Where did Alice move to last year?") == "'alice' | 'move' | 'last' | 'year'"
    assert ts_query("the") == "'the'"  # all stopwords: kept
    assert ts_query("?!") is None


def test_long_question_still_matches_by_keyword(store_factory):
    store = store_factory()
    (rec,) = put(store, new("We adopted a beagle puppy named Rex in March"))
    found = store.keyword_search(Scope("alice"), "what was the name of the puppy that alice adopted last spring?",
                                 [], 10)
    assert [h.rowid for h in found] == [rec.seq]


def test_tenants_live_in_schemas_of_their_own(pg_url, fake_embedder):
    with Memory(pg_url, embedder=fake_embedder, tenant="acme") as acme, \
            Memory(pg_url, embedder=fake_embedder, tenant="globex") as globex, \
            Memory(pg_url, embedder=fake_embedder) as plain:
        memory_id = acme.add("the vault code is 4711", user_id="alice").ids[0]
        globex.add("globex has no vault", user_id="alice")
        assert [h.id for h in acme.search("vault code", user_id="alice")] == [memory_id]
        for other in (globex, plain):
            assert memory_id not in [h.id for h in other.search("vault code 4711", user_id="alice")]
            assert all(r.id != memory_id for r in other.list(user_id="alice"))
            with pytest.raises(NotFoundError):
                other.get(memory_id)
            with pytest.raises(NotFoundError):
                other.history(memory_id)
            with pytest.raises(NotFoundError):
                other.delete(memory_id)
            other.forget(user_id="alice")
        assert acme.get(memory_id).text == "the vault code is 4711"
        assert acme.store.schema == "engram_" + tenant_slug("acme")
    assert {"engram", "engram_" + tenant_slug("acme"), "engram_" + tenant_slug("globex")} <= _schemas(pg_url)


@pytest.mark.parametrize("schema", ['x"; DROP TABLE records; --', "Public", "a-b", "", "a" * 64])
def test_schema_names_cannot_inject(postgres_url, schema):
    with pytest.raises(ConfigError):
        PostgresStore(postgres_url, schema=schema)


def test_concurrent_writers_lose_nothing(pg_url, fake_embedder):
    threads, per_thread = 8, 15
    shared = Memory(pg_url, embedder=fake_embedder)
    own = [Memory(pg_url, embedder=fake_embedder) for _ in range(2)]  # other pools, as other processes
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        mem = own[n % 2] if n % 4 == 0 else shared
        try:
            for i in range(per_thread):
                got = mem.add(f"writer {n} message {i}", user_id=f"user{n % 3}", session_id=f"s{n}")
                with lock:
                    ids.extend(got.ids)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    try:
        assert errors == []
        assert len(set(ids)) == threads * per_thread
        assert sum(shared.store.count(Scope(f"user{u}")) for u in range(3)) == threads * per_thread
        assert all(shared.get(i) for i in ids)

        # Concurrent updates of one memory: every one kept, versions without gaps.
        target = ids[0]

        def updater(n: int) -> None:
            try:
                for i in range(5):
                    (own[n % 2] if n % 2 else shared).update(target, f"edit {n}.{i}")
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=updater, args=(n,)) for n in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert errors == []
        assert [v.version for v in shared.history(target)] == list(range(1, 22))
    finally:
        for mem in (shared, *own):
            mem.close()


def test_bad_urls_and_dead_servers_raise_typed_errors(tmp_path):
    with pytest.raises(ConfigError):
        Memory("postgresql://localhost:notaport/db")
    with pytest.raises(ConfigError):
        Memory("postgresql://u@localhost/db?nonsense_option=1")
    with pytest.raises(StorageError) as dead:  # a socket directory with no server behind it
        Memory(f"postgresql://postgres@/postgres?host={tmp_path}&connect_timeout=2")
    assert not isinstance(dead.value, psycopg.Error)
    with pytest.raises(ConfigError):
        Memory("mysql://localhost/db")


def test_password_is_not_shown(postgres_url):
    store = PostgresStore(postgres_url.replace("postgres:@", "postgres:hunter2@"), schema="test_redact")
    try:
        assert "hunter2" not in store.url and "hunter2" not in repr(store.stats())
    finally:
        store.close()


def test_server_restart_is_a_storage_error_then_recovers(pg_url, fake_embedder):
    """A connection killed under the store (as by a server restart) gives StorageError
    or is replaced by the pool; the store keeps working either way."""
    with Memory(pg_url, embedder=fake_embedder) as mem:
        mem.add("before", user_id="u")
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        try:
            mem.add("during", user_id="u")
        except StorageError:
            pass
        mem.add("after", user_id="u")
        assert "after" in [r.text for r in mem.list(user_id="u")]


def test_migrations_are_recorded_and_newer_schemas_refused(postgres_url):
    store = PostgresStore(postgres_url, schema="test_migrations_rec")
    try:
        assert store.applied_migrations() == [name for name, _ in MIGRATIONS]
        with store._connection() as conn:
            conn.execute("INSERT INTO schema_migrations VALUES ('9999_future', 'x')")
    finally:
        store.close()
    PostgresStore(postgres_url, schema="test_migrations_rec_other").close()  # others unaffected
    with pytest.raises(ConfigError, match="newer Engram"):
        PostgresStore(postgres_url, schema="test_migrations_rec")


def test_missing_extra_names_the_pip_line():
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from engramdb import Memory\n"
        "from engramdb.errors import MissingDependencyError\n"
        "try:\n"
        "    Memory('postgresql://localhost/x')\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'engramdb[postgres]'" in out
    assert issubclass(MissingDependencyError, ImportError)


def test_import_engramdb_does_not_import_psycopg():
    code = "import engramdb, sys; print([m for m in ('psycopg', 'pgvector', 'psycopg_pool') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_vectors_round_trip_exactly(store_factory):
    store = store_factory()
    rec = new("exact floats")
    vector = np.random.default_rng(7).standard_normal((1, 64)).astype(np.float32)
    store.insert([rec], vector, actor=None)
    (item,) = store.export(Scope("alice"))
    assert item.vector.dtype == np.float32
    assert np.array_equal(item.vector, vector[0])


# -- engram migrate ----------------------------------------------------------------------


def _snapshot(store) -> dict:
    """Everything a store holds, minus arrival numbers (seq), for equality."""
    users = store.users()
    records = {}
    for user in users:
        for item in store.export(Scope(user)):
            data = item.record.to_dict()
            data.pop("seq")
            vector = None if item.vector is None else item.vector.tobytes()
            records[item.record.id] = (data, vector, [v.to_dict() for v in item.versions])
    return {
        "embedder": store.embedder_name(),
        "users": users,
        "records": records,
        "tombstones": sorted((user, [v.to_dict() for v in versions]) for user, versions in store.tombstones()),
    }


def test_migrate_sqlite_to_postgresql_and_back_is_lossless(tmp_path, pg_url, fake_embedder):
    import sqlite3

    from click.testing import CliRunner

    from engramdb.cli import main
    from engramdb.config import Config
    from engramdb.stores import open_store

    source = tmp_path / "source.db"
    with Memory(source, embedder=fake_embedder) as mem:
        ids = mem.add(
            [{"role": "user", "content": "I moved to Lisbon", "name": "Alice", "id": "t1",
              "timestamp": "2024-05-01T10:00:00Z"},
             {"role": "assistant", "content": "Lisbon is lovely"}],
            user_id="alice", session_id="s1", agent_id="bot", metadata={"topic": "travel", "n": 1.5, "ok": True},
        ).ids
        mem.add("bob likes tea", user_id="bob")
        gone = mem.add("a secret to erase", user_id="carol").ids[0]
        mem.update(ids[0], "I moved to Porto", user_id="alice", reason="fix")
        mem.update(ids[0], "I moved to Porto, then Faro", metadata={"topic": "moves"})
        mem.delete(ids[1])
        mem.delete(gone)
    with sqlite3.connect(source) as conn:  # one record without a vector (as after a failed re-embed)
        conn.execute("DELETE FROM vectors WHERE record_rowid = (SELECT rowid FROM records WHERE user_id = 'bob')")

    runner = CliRunner(env={"ENGRAM_STORE": None, "ENGRAM_CONFIG": None})
    back = tmp_path / "back.db"
    there = runner.invoke(main, ["migrate", "--from", f"sqlite:///{source}", "--to", pg_url, "--json"])
    assert there.exit_code == 0, there.output
    moved = json.loads(there.stdout)
    assert moved.pop("to").startswith("postgresql://postgres:***@/test_")
    assert moved == {
        "from": f"sqlite:///{source}", "users": 3, "records": 2, "tombstones": 2, "embedder": fake_embedder.name,
    }
    home = runner.invoke(main, ["migrate", "--from", pg_url, "--to", f"sqlite:///{back}"])
    assert home.exit_code == 0, home.output
    assert "Migrated 2 memories of 3 users and 2 deletion records" in " ".join(home.stdout.split())

    config = Config()
    stores = [open_store(f"sqlite:///{source}", config), open_store(pg_url, config),
              open_store(f"sqlite:///{back}", config)]
    try:
        snapshots = [_snapshot(store) for store in stores]
        assert snapshots[0]["records"][ids[0]][2][0]["text"] == "I moved to Lisbon"  # the snapshot sees history
        assert len(snapshots[0]["tombstones"]) == 2 and snapshots[0]["embedder"] == (fake_embedder.name, 64)
        assert [r[1] is None for r in snapshots[0]["records"].values()].count(True) == 1
        assert snapshots[1] == snapshots[0]
        assert snapshots[2] == snapshots[0]
    finally:
        for store in stores:
            store.close()
    # The migrated store works as a store: searchable, and the missing vector is made on open.
    with Memory(pg_url, embedder=fake_embedder) as mem:
        assert [h.id for h in mem.search("Faro", user_id="alice")][:1] == [ids[0]]
        assert mem.search("tea", user_id="bob")[0].text == "bob likes tea"
        assert mem.store.missing_vectors(10) == []


def test_migrate_refuses_a_target_with_other_users(tmp_path, pg_url, fake_embedder):
    from click.testing import CliRunner

    from engramdb.cli import main

    with Memory(tmp_path / "a.db", embedder=fake_embedder) as mem:
        mem.add("hello", user_id="alice")
    with Memory(pg_url, embedder=fake_embedder) as mem:
        mem.add("already here", user_id="zed")
    result = CliRunner(env={"ENGRAM_STORE": None, "ENGRAM_CONFIG": None}).invoke(
        main, ["migrate", "--from", f"sqlite:///{tmp_path / 'a.db'}", "--to", pg_url]
    )
    assert result.exit_code == 2
    assert "UsageError" in result.stderr and "empty store" in result.stderr
