"""SQLite's plans for the lifecycle lanes' lookups by id: a few ids of one user are found
through the ids' unique index, never by walking the user's rows (without statistics,
SQLite takes `user_id = ?` for the index beside `id IN (...)`, and the notes lane's and
distillation's per-round reads then cost what the user's whole history does).

Every SELECT that the calls run on the records table is traced and explained."""

from __future__ import annotations

import sqlite3

from engramdb.ids import new_id
from engramdb.living.notes import Draft, Made, NotesBatch
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores import NewRecord
from engramdb.stores.sqlite import SQLiteStore, content_hash
from engramdb.types import Scope

EMBED = FakeEmbedder()
AT = "2024-06-01T00:00:00.000000Z"


def _store(tmp_path) -> tuple[SQLiteStore, list]:
    store = SQLiteStore(tmp_path / "plans.db")
    records = [NewRecord(id=new_id(), scope=Scope(user), kind="turn", text=f"turn {i} of {user}", created_at=AT,
                         recorded_at=AT) for user in ("alice", "bob") for i in range(300)]
    stored = store.insert(records, EMBED.embed([r.text for r in records]), actor="tester")
    return store, [r for r in stored if r.user_id == "alice"]


def _plans(store: SQLiteStore, call) -> list[tuple[str, list[str]]]:
    """(statement, its plan) of every SELECT on `records` that `call()` runs."""
    conn = store._conn()
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    out = []
    probe = sqlite3.connect(store.path)
    try:
        for statement in seen:
            if statement.lstrip().upper().startswith("SELECT") and " records " in f" {statement} ":
                out.append((statement, [row[-1] for row in probe.execute("EXPLAIN QUERY PLAN " + statement)]))
    finally:
        probe.close()
    return out


def test_lookups_by_id_use_the_id_index_not_the_users_rows(tmp_path):
    store, alice = _store(tmp_path)
    ids = [r.id for r in alice[:40]]
    made = [Made(r.id, content_hash(r.text), Draft(("turn",), ("t",), "a turn")) for r in alice[:3]]
    calls = {
        "records_by_ids": lambda: store.records_by_ids(ids, "alice"),
        "note_vectors": lambda: store.note_vectors("alice", ids),
        "relations": lambda: store.relations("alice", ids),
        "notes": lambda: store.notes("alice", ids),
        "event_siblings": lambda: store.event_siblings("alice", ids),
        "write_notes": lambda: store.write_notes("alice", NotesBatch(made=made), at=AT, actor="notes"),
    }
    for name, call in calls.items():
        plans = _plans(store, call)
        assert plans, f"{name} read no records"
        for statement, plan in plans:
            assert not any("records_user_time" in step or step.startswith("SCAN") for step in plan), (
                name, statement[:120], plan)
    assert [r.id for r in store.records_by_ids(ids, "alice")] == ids
    assert store.records_by_ids(ids, "bob") == [], "another user's ids find nothing"
    assert set(store.note_vectors("bob", ids)) == set()
    store.close()


def test_distillations_duplicate_check_reads_the_users_current_memories_by_text_hash(tmp_path):
    """current_derived (is this text already a current memory of the user?) runs once per
    distillation job: through the current memories' (user_id, content_hash) index
    (migration 0011), not every row of the user."""
    store, alice = _store(tmp_path)
    fact = NewRecord(id=new_id(), scope=Scope("alice"), kind="fact", text="Alice lives in Paris.", created_at=AT,
                     recorded_at=AT, sources=[alice[0].id])
    store.insert([fact], EMBED.embed([fact.text]), actor="tester")
    hashes = [content_hash(fact.text), content_hash("Nobody said this.")]
    plans = _plans(store, lambda: store.current_derived("alice", hashes))
    assert plans
    for statement, plan in plans:
        assert any("records_current_hash" in step for step in plan), (statement[:120], plan)
    assert [r.id for r in store.current_derived("alice", hashes)] == [fact.id]
    assert store.current_derived("bob", hashes) == []
    store.close()
