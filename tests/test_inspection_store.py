"""The inspector's store reads (`stores.base.Inspection`), the same on every backend:
users with counts, sessions, a memory's links, the job queue and erasure receipts that
hold ids, times and hashes, never text."""

from __future__ import annotations

import pytest

from engramdb.keys import content_hash
from engramdb.stores.base import JobOutcome, NewRecord
from engramdb.types import Scope
from test_store_contract import EMBED, claim, enqueue, new, put, ts


@pytest.fixture
def store(store_factory):
    return store_factory()


def test_user_counts_in_id_order_with_pages_and_receipts_only_users(store):
    put(store, new("a1"), new("a2"), new("b1", user="bob"), new("c1", user="carol"))
    gone = put(store, new("d1", user="dave"))[0]
    store.delete(gone.id, at=ts(3), actor="tester")
    assert store.user_counts(10) == [("alice", 2), ("bob", 1), ("carol", 1), ("dave", 0)]
    assert store.user_counts(2) == [("alice", 2), ("bob", 1)]
    assert store.user_counts(2, "bob") == [("carol", 1), ("dave", 0)]


def test_sessions_latest_first_with_counts_and_times(store):
    put(store, new("x", session="s1", day=1), new("y", session="s1", day=2), new("z", session="s2", day=5),
        new("no session", day=3), new("other user", user="bob", session="s9"))
    assert store.sessions("alice", 10) == [
        {"session_id": "s2", "records": 1, "first": ts(5), "last": ts(5)},
        {"session_id": None, "records": 1, "first": ts(3), "last": ts(3)},
        {"session_id": "s1", "records": 2, "first": ts(1), "last": ts(2)},
    ]
    assert len(store.sessions("alice", 1)) == 1 and store.sessions("nobody", 10) == []


def test_memory_links_both_ways(store):
    turn = enqueue(store, new("I live in Paris"))[0]
    job = claim(store)
    fact = NewRecord(id="mem_fact", scope=Scope("alice"), kind="fact", text="lives in Paris", created_at=ts(1),
                     recorded_at=ts(2), sources=list(turn.sources), derived_from=(turn.id,))
    store.complete_job(job, JobOutcome(inserts=[fact], vectors=EMBED.embed([fact.text])), at=ts(2), actor="tester")
    assert store.memory_links("mem_fact") == [("mem_fact", "derived_from", turn.id)]
    assert store.memory_links(turn.id) == [("mem_fact", "derived_from", turn.id)]
    assert store.memory_links("mem_none") == []


def test_job_rows_newest_first_by_state_and_user_with_errors(store):
    enqueue(store, new("alice turn"))
    enqueue(store, new("bob turn", user="bob"))
    failing = claim(store)
    store.fail_job(failing, "extractor: boom", at=ts(2), retry_at=None)
    rows = store.job_rows(None, None, 10)
    assert [r["user_id"] for r in rows] == ["bob", "alice"] and rows[0]["id"] > rows[1]["id"]
    assert rows[1]["state"] == "failed" and rows[1]["error"] == "extractor: boom" and rows[1]["attempts"] == 1
    assert [r["user_id"] for r in store.job_rows(None, "failed", 10)] == ["alice"]
    assert [r["user_id"] for r in store.job_rows("bob", None, 10)] == ["bob"]
    assert store.job_rows(None, None, 10, before=rows[0]["id"]) == rows[1:]
    assert len(store.job_rows(None, None, 1)) == 1


def test_erasures_are_receipts_without_text_newest_first_paged(store):
    first, second, kept = put(store, new("secret one"), new("secret two"), new("kept"))
    store.delete(first.id, at=ts(3), actor="tester")
    store.delete(second.id, at=ts(4), actor="tester")
    receipts = store.erasures("alice", 10)
    assert [r["memory_id"] for r in receipts] == [second.id, first.id]
    assert receipts[0]["content_hash"] == content_hash("secret two") and receipts[0]["at"] == ts(4)
    assert "secret" not in repr(receipts)
    assert store.erasures("alice", 1, (receipts[0]["at"], receipts[0]["memory_id"])) == receipts[1:]
    assert store.erasures("bob", 10) == []
