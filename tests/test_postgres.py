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

from engramdb import Config, Memory
from engramdb.errors import ConfigError, MissingDependencyError, NotFoundError, StorageError, UsageError
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores import tenant_slug
from engramdb.stores.filters import parse
from engramdb.stores.postgres import HNSW_EF_SEARCH, PostgresStore, ts_query
from engramdb.stores.postgres_schema import MIGRATIONS
from engramdb.stores.sqlite import SQLiteStore
from engramdb.stores.transfer import copy_store
from engramdb.types import Scope
from test_store_contract import claim, derived, enqueue, new, outcome, put, ts


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


def test_ann_path_at_the_default_depth_uses_the_connection_settings(postgres_url):
    """A search of the default depth (limit 100: ef_search 200) runs as one statement on
    the connection's own settings; they must hold an iterative scan, or a narrow filter
    would starve the HNSW result."""
    emb = FakeEmbedder(dim=32)
    store = PostgresStore(postgres_url, schema="test_ann_default", ann_threshold=0)
    try:
        store.reset()
        store.set_embedder_name(emb.name, emb.dim)
        recs = [new(f"line {i} on subject {i % 11}", user="alice", session="rare" if i % 25 == 0 else "common")
                for i in range(1000)]
        store.insert(recs, emb.embed([r.text for r in recs]), actor=None)
        with store._connection() as conn:
            assert conn.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "relaxed_order"
            assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == str(HNSW_EF_SEARCH)
        q = emb.embed(["line 3 on subject 3"])[0]
        found = store.vector_search(Scope("alice", session_id="rare"), q, [], 100)
        rows = store.by_rowids([h.rowid for h in found], Scope("alice", session_id="rare"))
        assert len(found) == len(rows) == 40  # every row of the narrow session, none outside it
        assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)
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


def test_concurrent_openers_migrate_a_fresh_database_once(pg_url):
    """Stores and key stores opened at once on an empty database: the advisory lock makes
    each schema's migrations run once, and every opener succeeds."""
    from engramdb.server.keys.postgres import MIGRATIONS as KEY_MIGRATIONS
    from engramdb.server.keys.postgres import PostgresKeyStore

    start, opened, failed = threading.Barrier(8), [], []

    def open_one(n: int) -> None:
        start.wait()
        try:
            opened.append(PostgresStore(pg_url) if n % 2 else PostgresKeyStore(pg_url))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failed.append(exc)

    workers = [threading.Thread(target=open_one, args=(n,)) for n in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for store in opened:
        store.close()
    assert failed == [] and len(opened) == 8
    with psycopg.connect(pg_url) as conn:
        for schema, migrations in (("engram", MIGRATIONS), ("engram_control", KEY_MIGRATIONS)):
            assert conn.execute(f"SELECT name FROM {schema}.schema_migrations ORDER BY name").fetchall() == [
                (name,) for name, _ in migrations]


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


# -- derived memories and their jobs ----------------------------------------------------


def test_distillation_supersedes_and_answers_as_of_on_postgresql(pg_url, fake_embedder):
    """The real offline extractor (spaCy) through Memory, on PostgreSQL: a move retires
    the old residence (bitemporally, with history), search answers as of a date."""
    with Memory(pg_url, embedder=fake_embedder, config=Config(extractor="offline")) as mem:
        mem.add([{"role": "user", "content": "I live in Paris.", "timestamp": "2023-01-05T10:00:00Z"}],
                user_id="alice")
        mem.add([{"role": "user", "content": "I moved to Berlin.", "timestamp": "2023-06-05T10:00:00Z"}],
                user_id="alice")
        assert mem.flush(120)
        jobs = mem.jobs()
        jobs.pop("distilled")  # counted just after each job's last write (tests/test_backlog.py)
        ran = {r["capability"] for r in jobs.pop("runs")}  # what ran (tests/test_scheduler.py)
        assert "distill" in ran and ran <= {"distill", "notes"}
        assert jobs == {"pending": 0, "running": 0, "failed": 0, "ready": 0, "oldest": None, "recent_errors": [],
                        "backlog_age_s": None}
        (berlin,) = mem.list(user_id="alice", filters={"metadata.attribute": "residence"})
        (paris,) = mem.list(user_id="alice", filters={"metadata.attribute": "residence", "valid_to": {"ne": None}})
        assert (paris.text, berlin.text) == ("The user lives in Paris", "The user lives in Berlin")
        assert paris.valid_to.startswith("2023-06-05") and paris.expired_at is not None
        assert paris.recorded_at <= paris.expired_at and berlin.expired_at is None
        chain = mem.history(paris.id)
        assert [(v.event, v.reason) for v in chain] == [("add", None), ("supersede", f"superseded by {berlin.id}")]
        assert mem.history(berlin.id)[0].reason == f"supersedes {paris.id}"
        turns = {r.text: r for r in mem.list(user_id="alice", filters={"kind": "turn"})}
        assert paris.sources == turns["I live in Paris."].sources

        then = [h.id for h in mem.search("where does the user live", user_id="alice", as_of="2023-03-01")]
        now = [h.id for h in mem.search("where does the user live", user_id="alice")]
        assert paris.id in then and berlin.id not in then
        assert berlin.id in now and paris.id not in now

        mem.delete(turns["I moved to Berlin."].id)  # erasure follows the sources, and undoes the move
        with pytest.raises(NotFoundError):
            mem.get(berlin.id)
        assert mem.get(paris.id).valid_to is None
        assert [v.event for v in mem.history(paris.id)] == ["add", "supersede", "reinstate"]


def test_concurrent_workers_never_claim_the_same_job(pg_url):
    stores = [PostgresStore(pg_url) for _ in range(3)]  # three pools: as three processes
    try:
        queued = [enqueue(stores[0], new(f"turn {i}", user=f"u{i % 4}"))[0].id for i in range(40)]
        claimed: list[tuple[int, list[str]]] = []
        errors: list[BaseException] = []
        start = threading.Barrier(6)

        def worker(n: int) -> None:
            try:
                start.wait()
                while (job := claim(stores[n % 3])) is not None:
                    claimed.append((job.id, job.record_ids))
            except BaseException as exc:  # reported below
                errors.append(exc)

        workers = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert errors == []
        assert len(claimed) == 40 and len({job_id for job_id, _ in claimed}) == 40
        assert sorted(ids[0] for _, ids in claimed) == sorted(queued)
        assert stores[0].job_stats()["running"] == 40
    finally:
        for store in stores:
            store.close()


def _in_flight(pg_url: str, statement: str) -> psycopg.Connection:
    """Another session that ran `statement` and holds its locks, not yet committed."""
    conn = psycopg.connect(pg_url)
    conn.execute("SET search_path TO engram")
    conn.execute(statement)
    return conn


def _completing(store, job, result: list) -> threading.Thread:
    (turn,) = store.records_by_ids(job.record_ids, job.scope.user_id)
    thread = threading.Thread(target=lambda: result.append(store.complete_job(
        job, outcome(derived("The user lives in Rome", turn, slot="user|residence")), at=ts(2, 1), actor=None)))
    thread.start()
    return thread


def test_complete_job_waits_for_a_forget_in_flight_then_writes_nothing(pg_url):
    """forget deletes the scope's jobs first: a completion that comes while it runs waits
    for it and then finds its job gone (no memory outlives the forget)."""
    store = PostgresStore(pg_url)
    try:
        enqueue(store, new("I live in Rome"))
        job = claim(store)
        forget = _in_flight(pg_url, "DELETE FROM jobs")
        result: list = []
        thread = _completing(store, job, result)
        thread.join(1.0)
        assert thread.is_alive()  # waiting on the job's row
        forget.commit()
        forget.close()
        thread.join(30)
        assert result == [[]] and store.slot_memories("alice", ["user|residence"]) == []
    finally:
        store.close()


def test_complete_job_waits_for_a_delete_of_its_turn_then_skips_it(pg_url):
    store = PostgresStore(pg_url)
    try:
        (turn,) = enqueue(store, new("I live in Rome"))
        job = claim(store)
        result: list = []
        delete = _in_flight(pg_url, f"DELETE FROM records WHERE id = '{turn.id}'")
        thread = _completing(store, job, result)
        thread.join(1.0)
        assert thread.is_alive()  # waiting on the turn's row
        delete.commit()
        delete.close()
        thread.join(30)
        assert result == [[]] and store.slot_memories("alice", ["user|residence"]) == []
        assert store.job_stats()["running"] == 0  # the job ended all the same
    finally:
        store.close()


def test_an_older_postgresql_schema_is_migrated(pg_url, monkeypatch):
    import engramdb.stores.postgres as postgres

    monkeypatch.setattr(postgres, "MIGRATIONS", MIGRATIONS[:1])
    PostgresStore(pg_url).close()
    monkeypatch.undo()
    with psycopg.connect(pg_url) as conn:  # rows as the first release wrote them
        conn.execute(
            "INSERT INTO engram.records (id, user_id, kind, role, text, sources, created_at, recorded_at, updated_at, "
            "content_hash, tsv) VALUES ('mem_old', 'alice', 'turn', 'user', 'I live in Lima', '[\"mem_old\"]', "
            "%s, %s, %s, %s, to_tsvector('english', 'I live in Lima'))",
            (ts(1), ts(1), ts(1), hashlib.sha256(b"I live in Lima").hexdigest()),
        )
        # every column of the first schema filled, another user, a history, a meta row
        conn.execute(
            "INSERT INTO engram.records (id, user_id, agent_id, session_id, kind, role, name, text, sources, metadata, "
            "created_at, valid_to, recorded_at, updated_at, content_hash, tsv) VALUES ('mem_old2', 'carol', "
            "'planner', 's9', 'turn', 'assistant', 'Ada', 'we meet on Fridays', '[\"mem_old2\"]', "
            "'{\"topic\": \"meetings\"}', %s, %s, %s, %s, %s, to_tsvector('english', 'we meet on Fridays'))",
            (ts(2), ts(3), ts(2), ts(3), hashlib.sha256(b"we meet on Fridays").hexdigest()),
        )
        conn.execute(
            "INSERT INTO engram.versions (memory_id, version, user_id, event, text, content_hash, at, actor, reason) "
            "VALUES ('mem_old2', 1, 'carol', 'add', 'we meet on Mondays', 'h1', %s, 'planner', NULL), "
            "('mem_old2', 2, 'carol', 'update', NULL, 'h2', %s, 'planner', 'moved')", (ts(2), ts(3)))
        conn.execute("INSERT INTO engram.meta (key, value) VALUES ('written_by', 'engramdb 0.0.1')")
        assert [r[0] for r in conn.execute("SELECT name FROM engram.schema_migrations")] == ["0001_records"]
        columns = {table: [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'engram' AND table_name = %s "
            "AND column_name NOT IN ('tsv', 'vec') ORDER BY ordinal_position", (table,))]
            for table in ("records", "versions", "meta")}

        def rows(conn: psycopg.Connection) -> dict[str, list[tuple]]:
            return {table: conn.execute(f"SELECT {', '.join(cols)} FROM engram.{table} ORDER BY 1, 2").fetchall()
                    for table, cols in columns.items()}

        before = rows(conn)
        words = conn.execute("SELECT rowid, tsv::text FROM engram.records ORDER BY rowid").fetchall()
    store = PostgresStore(pg_url)
    with psycopg.connect(pg_url) as conn:  # loses nothing: every old column of every row, the words moved
        after = rows(conn)
        assert after == before and len(after["records"]) == 2 and len(after["versions"]) == 2
        assert conn.execute("SELECT rowid, tsv::text FROM engram.keywords ORDER BY rowid").fetchall() == words
    try:
        assert store.applied_migrations() == [name for name, _ in MIGRATIONS]
        assert [v.reason for v in store.history("mem_old2")] == [None, "moved"]
        (old,) = store.records_by_ids(["mem_old"], "alice")
        assert (old.text, old.expired_at, old.sources) == ("I live in Lima", None, ["mem_old"])
        assert [h.rowid for h in store.keyword_search(Scope("alice"), "Lima", [], 10)] == [old.seq]  # backfilled
        store.insert([], np.zeros((0, 64), dtype=np.float32), actor=None)
        # the old turn can be distilled (as a job would name it) and erasure follows it
        fact = derived("The user lives in Lima", old, slot="user|residence")
        (written,) = store.insert([fact], FakeEmbedder().embed([fact.text]), actor=None)
        assert store.slot_memories("alice", ["user|residence"]) == [written]
        assert store.delete("mem_old", at=ts(2), actor=None)
        assert store.get(written.id) is None
        with psycopg.connect(pg_url) as conn:  # erasure takes the words too
            assert conn.execute("SELECT user_id, count(*) FROM engram.keywords GROUP BY 1").fetchall() == [("carol", 1)]
    finally:
        store.close()


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


def _derived_life(url: str, embedder) -> dict[str, str]:
    """A store with distilled memories (Paris superseded by Berlin), a queued job, and
    a deleted turn; returns the ids the tests follow."""
    with Memory(url, embedder=embedder, config=Config(extractor="offline")) as mem:
        paris_turn = mem.add([{"content": "I live in Paris.", "timestamp": "2023-01-05T10:00:00Z", "id": "m1"}],
                             user_id="alice", session_id="s1").ids[0]
        berlin_turn = mem.add([{"content": "I moved to Berlin.", "timestamp": "2023-06-05T10:00:00Z"}],
                              user_id="alice", session_id="s2").ids[0]
        mem.add([{"content": "I work at Airbus.", "timestamp": "2023-01-05T10:00:00Z"}], user_id="bob")
        assert mem.flush(120)
        (paris,) = mem.list(user_id="alice", filters={"metadata.attribute": "residence", "valid_to": {"ne": None}})
        (berlin,) = mem.list(user_id="alice", filters={"metadata.attribute": "residence"})
    # Queued once the Memory (and its background worker) is closed: a live worker could
    # claim and run the job first, and the migrated stores would then have none to claim.
    from engramdb.stores import open_store

    store = open_store(url, Config())
    try:
        store.insert([new("queued, not distilled yet", session="s3")], FakeEmbedder().embed(["q"]), actor=None,
                     enqueue=True)
    finally:
        store.close()
    return {"paris_turn": paris_turn, "berlin_turn": berlin_turn, "paris": paris.id, "berlin": berlin.id}


def _everything(store) -> dict:
    return {**_snapshot(store), "derived": {user: store.export_derived(user) for user in store.users()}}


def _still_linked(store, ids: dict[str, str]) -> None:
    """In the migrated store, erasing a turn still erases what was derived from it."""
    assert store.slot_memories("alice", ["user|residence"])[0].id == ids["berlin"]
    assert store.get(ids["paris"]).expired_at is not None
    assert store.delete(ids["berlin_turn"], at=ts(20), actor="alice")
    assert store.get(ids["berlin"]) is None
    assert store.get(ids["paris"]).valid_to is None  # what the erased move superseded is true again
    assert [r.id for r in store.slot_memories("alice", ["user|residence"])] == [ids["paris"]]
    job = store.claim_job(now=ts(30), lease_until=ts(30, 1))  # the queued job came along
    assert job.scope == Scope("alice", session_id="s3") and store.records_by_ids(job.record_ids, "alice")


def test_migrate_carries_derived_memories_between_postgresql_stores(pg_url, fake_embedder):
    ids = _derived_life(pg_url, fake_embedder)
    source, target = PostgresStore(pg_url), PostgresStore(pg_url, schema="engram_copy")
    try:
        before = _everything(source)
        assert before["derived"]["alice"]["slots"][ids["paris"]] == "user|residence"
        assert {(link[0], link[2]) for link in before["derived"]["alice"]["links"] if link[1] == "derived_from"} >= {
            (ids["paris"], ids["paris_turn"]), (ids["berlin"], ids["berlin_turn"])}
        assert [j["state"] for j in before["derived"]["alice"]["jobs"]] == ["pending"]
        assert before["records"][ids["paris"]][0]["expired_at"] is not None
        moved = copy_store(source, target)
        assert (moved.users, moved.records) == (2, len(before["records"]))
        assert _everything(target) == before
        copy_store(source, target)  # a re-run copies nothing twice, jobs included
        assert _everything(target) == before
        _still_linked(target, ids)
    finally:
        source.close()
        target.close()


@pytest.mark.skipif(not hasattr(SQLiteStore, "export_derived"),
                    reason="SQLiteStore has no export_derived/import_derived yet: migrate refuses its derived memories")
def test_migrate_sqlite_to_postgresql_and_back_keeps_derived_memories_linked(tmp_path, pg_url, fake_embedder):
    ids = _derived_life(tmp_path / "source.db", fake_embedder)
    source, there, back = (SQLiteStore(tmp_path / "source.db"), PostgresStore(pg_url),
                           SQLiteStore(tmp_path / "back.db"))
    try:
        copy_store(source, there)
        copy_store(there, back)
        before = _everything(source)
        assert _everything(there) == before and _everything(back) == before
        _still_linked(there, ids)
        _still_linked(back, ids)
    finally:
        for store in (source, there, back):
            store.close()




def test_a_read_only_memory_on_postgresql_creates_nothing_and_writes_nothing(pg_url, fake_embedder):
    import engramdb.errors as errors

    with pytest.raises(ConfigError, match="no Engram store"):
        Memory(pg_url, embedder=fake_embedder, read_only=True)
    with psycopg.connect(pg_url) as conn:  # nothing was made by trying
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'engram'").fetchone()[0] == 0
    with Memory(pg_url, embedder=fake_embedder) as mem:
        mem.add("I live in Lima", user_id="ann")
    with Memory(pg_url, embedder=fake_embedder, read_only=True) as reader:
        assert [h.text for h in reader.search("Lima", user_id="ann")] == ["I live in Lima"]
        with pytest.raises(errors.PermissionDeniedError):
            reader.add("more", user_id="ann")
        with pytest.raises(errors.StorageError, match="read-only"):  # and PostgreSQL refuses it too
            reader.store.forget(Scope("ann"))
    with Memory(pg_url, embedder=fake_embedder) as mem:
        assert mem.stats(user_id="ann")["records"] == 1
