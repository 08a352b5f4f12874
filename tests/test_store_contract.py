"""The Store contract: every backend must pass this suite, through Store methods only.

Backends come from conftest.STORE_FACTORIES; the `store` fixture is parametrized over them.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from engramdb.ids import new_id
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores import NewRecord
from engramdb.stores.base import JobOutcome, Retirement, retracted_by, superseded_by
from engramdb.stores.filters import current, parse, valid_at
from engramdb.stores.sqlite import content_hash
from engramdb.types import Record, Scope, ScoredId

EMBED = FakeEmbedder()
AT = "2024-06-01T00:00:00.000000Z"


@pytest.fixture
def store(store_factory):
    return store_factory()


def ts(day: int, hour: int = 0) -> str:
    return f"2024-06-{day:02d}T{hour:02d}:00:00.000000Z"


def new(text: str, user: str = "alice", *, session: str | None = None, agent: str | None = None,
        day: int = 1, hour: int = 0, role: str = "user", metadata: dict | None = None,
        sources: list[str] | None = None, kind: str = "turn", name: str | None = None) -> NewRecord:
    rid = new_id()
    return NewRecord(
        id=rid, scope=Scope(user, agent, session), kind=kind, text=text, created_at=ts(day, hour),
        recorded_at=AT, role=role, name=name, sources=sources or [rid], metadata=metadata or {},
    )


def put(store, *records: NewRecord) -> list[Record]:
    return store.insert(list(records), EMBED.embed([r.text for r in records]), actor="tester")


def vec(text: str) -> np.ndarray:
    return EMBED.embed([text])[0]


def ids_of(store, hits: list[ScoredId], scope: Scope) -> list[str]:
    records = store.by_rowids([h.rowid for h in hits], scope)
    return [records[h.rowid].id for h in hits if h.rowid in records]


def texts(records) -> list[str]:
    return [r.text for r in records]


# -- insert, get, by_rowids -------------------------------------------------------------


def test_insert_returns_records_in_order_with_every_field(store):
    a = new("I moved to Berlin", session="s1", agent="bot", day=3, role="user", name="Al",
            metadata={"topic": "travel", "n": 2}, sources=["m1"])
    b = new("Welcome to Berlin", session="s1", agent="bot", day=3, hour=1, role="assistant")
    out = put(store, a, b)
    assert [r.id for r in out] == [a.id, b.id]
    first = out[0]
    assert (first.user_id, first.agent_id, first.session_id) == ("alice", "bot", "s1")
    assert (first.kind, first.text, first.role, first.name) == ("turn", "I moved to Berlin", "user", "Al")
    assert first.sources == ["m1"]
    assert first.metadata == {"topic": "travel", "n": 2}
    assert first.created_at == ts(3)
    assert first.recorded_at == AT and first.updated_at == AT
    assert first.valid_to is None
    assert out[1].seq > first.seq


def test_get_by_id_and_scoped_by_user(store):
    (rec,) = put(store, new("hello there"))
    assert store.get(rec.id) == rec
    assert store.get(rec.id, user_id="alice") == rec
    assert store.get(rec.id, user_id="bob") is None
    assert store.get("mem_unknown") is None


def test_by_rowids_only_returns_rows_in_scope(store):
    a, b = put(store, new("one", session="s1"), new("two", session="s2"))
    (c,) = put(store, new("three", user="bob"))
    rowids = [a.seq, b.seq, c.seq]
    assert set(store.by_rowids(rowids, Scope("alice"))) == {a.seq, b.seq}
    assert set(store.by_rowids(rowids, Scope("alice", session_id="s2"))) == {b.seq}
    assert set(store.by_rowids(rowids, Scope("bob"))) == {c.seq}
    assert store.by_rowids([], Scope("alice")) == {}


# -- list and count ---------------------------------------------------------------------


def test_list_orders_by_created_at_and_pages(store):
    put(store, new("third", day=3), new("first", day=1), new("second", day=2), new("fourth", day=4))
    scope = Scope("alice")
    assert texts(store.list(scope, [], 10, 0)) == ["first", "second", "third", "fourth"]
    assert texts(store.list(scope, [], 2, 0)) == ["first", "second"]
    assert texts(store.list(scope, [], 2, 2)) == ["third", "fourth"]
    assert store.list(scope, [], 2, 4) == []


def test_list_narrows_by_scope_and_conditions(store):
    put(
        store,
        new("a1", session="s1", agent="x", role="user", metadata={"topic": "food"}),
        new("a2", session="s1", agent="y", role="assistant", day=2),
        new("a3", session="s2", agent="x", role="user", day=3, metadata={"topic": "travel"}),
    )
    assert texts(store.list(Scope("alice", session_id="s1"), [], 10, 0)) == ["a1", "a2"]
    assert texts(store.list(Scope("alice", agent_id="x"), [], 10, 0)) == ["a1", "a3"]
    assert texts(store.list(Scope("alice", "x", "s2"), [], 10, 0)) == ["a3"]
    assert texts(store.list(Scope("alice"), parse({"role": "assistant"}), 10, 0)) == ["a2"]
    assert texts(store.list(Scope("alice"), parse({"metadata.topic": "travel"}), 10, 0)) == ["a3"]
    assert texts(store.list(Scope("alice"), parse({"created_at": {"gte": "2024-06-02"}}), 10, 0)) == ["a2", "a3"]
    assert texts(store.list(Scope("alice"), parse({"role": {"in": ["user"]}, "session_id": "s2"}), 10, 0)) == ["a3"]


def test_count_by_scope(store):
    put(store, new("a", session="s1"), new("b", session="s1"), new("c", session="s2"), new("d", user="bob"))
    assert store.count(Scope("alice")) == 3
    assert store.count(Scope("alice", session_id="s1")) == 2
    assert store.count(Scope("bob")) == 1
    assert store.count(Scope("carol")) == 0


# -- search -----------------------------------------------------------------------------


def test_keyword_search_ranks_matches_and_respects_conditions(store):
    put(
        store,
        new("my dog is called Rex", session="s1"),
        new("I like pizza with olives", session="s1"),
        new("the dog barked at the mailman", session="s2", role="assistant"),
    )
    scope = Scope("alice")
    found = ids_of(store, store.keyword_search(scope, "dog", [], 10), scope)
    assert len(found) == 2
    assert set(texts(store.get(i) for i in found)) == {"my dog is called Rex", "the dog barked at the mailman"}
    narrowed = store.keyword_search(Scope("alice", session_id="s2"), "dog", [], 10)
    assert texts(store.get(i) for i in ids_of(store, narrowed, scope)) == ["the dog barked at the mailman"]
    filtered = store.keyword_search(scope, "dog", parse({"role": "user"}), 10)
    assert texts(store.get(i) for i in ids_of(store, filtered, scope)) == ["my dog is called Rex"]
    assert store.keyword_search(scope, "pizza", [], 10)[0].score > 0
    assert store.keyword_search(scope, "zebra", [], 10) == []
    assert store.keyword_search(scope, "?!", [], 10) == []
    assert len(store.keyword_search(scope, "dog", [], 1)) == 1


def test_vector_search_nearest_first_with_scope_and_conditions(store):
    put(
        store,
        new("golden retriever puppy", session="s1"),
        new("stock market prices", session="s1", metadata={"k": 1}),
        new("golden retriever puppy training", session="s2", metadata={"k": 2}),
    )
    scope = Scope("alice")
    found = store.vector_search(scope, vec("golden retriever puppy"), [], 10)
    assert len(found) == 3
    assert store.get(ids_of(store, found, scope)[0]).text == "golden retriever puppy"
    assert found[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)
    in_s2 = store.vector_search(Scope("alice", session_id="s2"), vec("golden retriever puppy"), [], 10)
    assert texts(store.get(i) for i in ids_of(store, in_s2, scope)) == ["golden retriever puppy training"]
    cond = store.vector_search(scope, vec("golden retriever"), parse({"metadata.k": 1}), 10)
    assert texts(store.get(i) for i in ids_of(store, cond, scope)) == ["stock market prices"]
    assert len(store.vector_search(scope, vec("golden"), [], 2)) == 2
    assert store.vector_search(Scope("nobody"), vec("golden"), [], 10) == []


def test_vector_search_many_answers_each_query_as_vector_search_does(store):
    """One answer per query vector, the same as `vector_search` gives it alone: with a
    scope, with conditions that only a few (or none) of the nearest pass, and a
    memory erased meanwhile."""
    words = ["golden retriever", "stock market", "pottery class", "kayak trip", "vegan recipes", "Paris flat"]
    records = put(store, *[new(f"{words[i % len(words)]} note {i}", session=f"s{i % 3}", metadata={"k": i % 7})
                           for i in range(42)])
    put(store, new("golden retriever of another user", user="bob"))
    store.delete(records[0].id, at=AT, actor="tester")
    queries = EMBED.embed(["golden retriever", "kayak", "vegan Paris", "nothing alike at all"])
    cases = [(Scope("alice"), []), (Scope("alice", session_id="s1"), []), (Scope("alice"), parse({"metadata.k": 3})),
             (Scope("alice"), parse({"metadata.k": 99})), (Scope("bob"), []), (Scope("nobody"), [])]
    for scope, conditions in cases:
        for limit in (1, 5, 9):
            many = store.vector_search_many(scope, queries, conditions, limit)
            alone = [store.vector_search(scope, q, conditions, limit) for q in queries]
            assert [[h.rowid for h in hits] for hits in many] == [[h.rowid for h in hits] for hits in alone]
            assert all(a.score == pytest.approx(b.score, abs=1e-5) for m, o in zip(many, alone) for a, b in zip(m, o))
    narrowed = store.vector_search_many(Scope("alice"), queries, parse({"metadata.k": 3}), 5)
    assert [len(hits) for hits in narrowed] == [5, 5, 5, 5], "k=3: 6 of the 41 left: the exact fallback finds 5"
    assert records[0].id not in {i for hits in narrowed for i in ids_of(store, hits, Scope("alice"))}
    assert store.vector_search_many(Scope("alice"), np.zeros((0, queries.shape[1]), np.float32), [], 5) == []


# -- update, delete, history ------------------------------------------------------------


def test_update_keeps_history_chain_and_reindexes(store):
    (rec,) = put(store, new("I live in Paris", metadata={"a": 1}))
    later = "2024-07-01T00:00:00.000000Z"
    updated = store.update(rec.id, "I live in Lisbon", vec("I live in Lisbon"), at=later, actor="bot",
                           reason="moved")
    assert updated.text == "I live in Lisbon"
    assert updated.metadata == {"a": 1}  # metadata=None keeps it
    assert updated.updated_at == later and updated.created_at == rec.created_at
    assert store.get(rec.id).text == "I live in Lisbon"
    history = store.history(rec.id)
    assert [(v.version, v.event, v.text) for v in history] == [
        (1, "add", "I live in Paris"), (2, "update", "I live in Lisbon")
    ]
    assert history[1].reason == "moved" and history[1].actor == "bot" and history[1].at == later
    assert history[0].content_hash == hashlib.sha256(b"I live in Paris").hexdigest()
    scope = Scope("alice")
    assert store.keyword_search(scope, "Paris", [], 10) == []
    assert ids_of(store, store.keyword_search(scope, "Lisbon", [], 10), scope) == [rec.id]
    top = store.vector_search(scope, vec("I live in Lisbon"), [], 1)
    assert top[0].score == pytest.approx(1.0, abs=1e-5)
    store.update(rec.id, "I live in Rome", vec("I live in Rome"), at=later, actor=None, reason=None,
                 metadata={"b": 2})
    assert store.get(rec.id).metadata == {"b": 2}
    assert [v.text for v in store.history(rec.id)] == ["I live in Paris", "I live in Lisbon", "I live in Rome"]


def test_delete_erases_text_everywhere_but_keeps_hash_tombstone(store):
    (rec, other) = put(store, new("secret diary entry about zebras"), new("grocery list"))
    store.update(rec.id, "secret diary entry about lions", vec("secret diary entry about lions"), at=AT,
                 actor=None, reason=None)
    assert store.delete(rec.id, at="2024-08-01T00:00:00.000000Z", actor="alice") is True
    scope = Scope("alice")
    assert store.get(rec.id) is None
    assert texts(store.list(scope, [], 10, 0)) == ["grocery list"]
    assert store.keyword_search(scope, "zebras", [], 10) == []
    assert store.keyword_search(scope, "lions", [], 10) == []
    assert rec.id not in ids_of(store, store.vector_search(scope, vec("secret diary entry about lions"), [], 10), scope)
    history = store.history(rec.id)
    assert [v.event for v in history] == ["add", "update", "delete"]
    assert all(v.text is None for v in history)
    assert history[-1].content_hash == hashlib.sha256(b"secret diary entry about lions").hexdigest()
    assert history[0].content_hash == hashlib.sha256(b"secret diary entry about zebras").hexdigest()
    assert store.delete(rec.id, at=AT, actor=None) is False
    assert store.count(scope) == 1
    assert store.get(other.id) == other


# -- forget and reset -------------------------------------------------------------------


def test_forget_whole_user(store):
    a1, a2 = put(store, new("alpha one", session="s1"), new("alpha two", session="s2"))
    (b1,) = put(store, new("alpha bob", user="bob"))
    assert store.forget(Scope("alice")) == 2
    assert store.count(Scope("alice")) == 0
    assert store.history(a1.id) == [] and store.history(a2.id) == []
    assert store.keyword_search(Scope("alice"), "alpha", [], 10) == []
    assert store.vector_search(Scope("alice"), vec("alpha one"), [], 10) == []
    assert store.get(b1.id) == b1
    assert ids_of(store, store.keyword_search(Scope("bob"), "alpha", [], 10), Scope("bob")) == [b1.id]
    # the scope still works afterwards
    (again,) = put(store, new("alpha again"))
    assert ids_of(store, store.vector_search(Scope("alice"), vec("alpha again"), [], 10), Scope("alice")) == [again.id]


def test_forget_narrowed_session(store):
    a1, a2, a3 = put(store, new("beta one", session="s1"), new("beta two", session="s1"),
                     new("beta three", session="s2"))
    assert store.forget(Scope("alice", session_id="s1")) == 2
    scope = Scope("alice")
    assert texts(store.list(scope, [], 10, 0)) == ["beta three"]
    assert store.history(a1.id) == [] and store.history(a2.id) == []
    assert [v.event for v in store.history(a3.id)] == ["add"]
    assert ids_of(store, store.keyword_search(scope, "beta", [], 10), scope) == [a3.id]
    assert ids_of(store, store.vector_search(scope, vec("beta one"), [], 10), scope) == [a3.id]
    assert store.forget(Scope("alice", session_id="nope")) == 0


def test_reset_erases_every_user(store):
    put(store, new("gamma", user="alice"), new("gamma", user="bob"))
    store.reset()
    for user in ("alice", "bob"):
        assert store.count(Scope(user)) == 0
        assert store.keyword_search(Scope(user), "gamma", [], 10) == []
        assert store.vector_search(Scope(user), vec("gamma"), [], 10) == []
    assert store.stats()["records"] == 0
    (rec,) = put(store, new("gamma after reset"))
    assert ids_of(store, store.vector_search(Scope("alice"), vec("gamma"), [], 5), Scope("alice")) == [rec.id]


# -- export / import --------------------------------------------------------------------


def test_export_import_round_trip(store_factory):
    source, target = store_factory(), store_factory()
    a, b = put(source, new("delta one", session="s1", metadata={"x": 1}), new("delta two", session="s2"))
    put(source, new("not exported", user="bob"))
    source.update(a.id, "delta one edited", vec("delta one edited"), at=AT, actor="t", reason="fix")
    items = list(source.export(Scope("alice")))
    assert [i.record.id for i in items] == [a.id, b.id]
    assert all(i.vector is not None and len(i.vector) == EMBED.dim for i in items)
    np.testing.assert_allclose(items[0].vector, vec("delta one edited"), atol=1e-6)
    assert [i.record.id for i in source.export(Scope("alice", session_id="s2"))] == [b.id]

    vectors = np.stack([i.vector for i in items])
    assert target.import_records(items, vectors) == 2
    assert target.import_records(items, vectors) == 0  # idempotent
    scope = Scope("alice")
    for item in items:
        got = target.get(item.record.id)
        original = source.get(item.record.id)
        assert (got.text, got.metadata, got.session_id, got.created_at, got.updated_at, got.sources) == (
            original.text, original.metadata, original.session_id, original.created_at, original.updated_at,
            original.sources,
        )
        assert target.history(item.record.id) == source.history(item.record.id)
    assert target.count(scope) == 2 and target.count(Scope("bob")) == 0
    assert ids_of(target, target.keyword_search(scope, "edited", [], 10), scope) == [a.id]
    top = target.vector_search(scope, vec("delta one edited"), [], 1)
    assert ids_of(target, top, scope) == [a.id]


def test_stats(store):
    put(store, new("x1", session="s1"), new("x2", session="s1"), new("x3", session="s2"), new("x4"),
        new("y1", user="bob", kind="fact"))
    everything = store.stats()
    assert everything["records"] == 5
    assert everything["users"] == 2
    assert everything["by_kind"] == {"turn": 4, "fact": 1}
    assert everything["by_state"] == {"active": 5}
    alice = store.stats("alice")
    assert alice["records"] == 4
    assert alice["sessions"] == 3  # s1, s2 and "no session"
    assert "users" not in alice
    assert store.stats("nobody")["records"] == 0


# -- isolation --------------------------------------------------------------------------


def test_user_b_never_sees_user_a(store):
    (a,) = put(store, new("alice private kiwi", session="shared", agent="bot", metadata={"t": "x"},
                          sources=["src-1"]))
    (b,) = put(store, new("bob public banana", user="bob", session="shared", agent="bot"))
    bob = Scope("bob")
    bob_narrow = Scope("bob", "bot", "shared")
    sneaky = [
        parse({"id": a.id}), parse({"source": "src-1"}), parse({"metadata.t": "x"}),
        parse({"session_id": "shared"}), parse({"agent_id": "bot"}), [],
    ]
    for conditions in sneaky:
        for scope in (bob, bob_narrow):
            assert a.id not in [r.id for r in store.list(scope, conditions, 100, 0)]
            assert a.id not in ids_of(store, store.keyword_search(scope, "alice private kiwi", conditions, 100), scope)
            assert a.id not in ids_of(store, store.vector_search(scope, vec("alice private kiwi"), conditions, 100),
                                      scope)
            assert all(h.rowid != a.seq for h in store.keyword_search(scope, "kiwi", conditions, 100))
            assert all(h.rowid != a.seq for h in store.vector_search(scope, vec("alice private kiwi"), conditions, 100))
    assert store.get(a.id, user_id="bob") is None
    assert store.by_rowids([a.seq], bob) == {}
    assert store.count(bob) == 1
    assert [i.record.id for i in store.export(bob)] == [b.id]
    assert store.stats("bob")["records"] == 1
    assert store.forget(Scope("bob", session_id="shared")) == 1
    assert store.get(a.id) == a


def test_every_filter_operator_means_the_same_on_every_backend(store):
    put(
        store,
        new("f1", day=1, role="user", metadata={"n": 1, "tag": "a", "flag": True}, sources=["s-1"]),
        new("f2", day=2, role="assistant", metadata={"n": 2.5, "tag": "b", "none": None}, name="Bot"),
        new("f3", day=3, role="user", metadata={"n": 10, "tag": "c"}, session="x"),
    )
    scope = Scope("alice")

    def match(filters: dict) -> list[str]:
        return texts(store.list(scope, parse(filters), 10, 0))

    assert match({"metadata.n": {"gt": 2}}) == ["f2", "f3"]
    assert match({"metadata.n": {"gte": 1, "lt": 10}}) == ["f1", "f2"]
    assert match({"metadata.n": 1.0}) == ["f1"]
    assert match({"metadata.tag": {"in": ["a", "c"]}}) == ["f1", "f3"]
    assert match({"metadata.tag": {"nin": ["a"]}}) == ["f2", "f3"]
    assert match({"metadata.tag": {"ne": "b"}}) == ["f1", "f3"]
    assert match({"metadata.tag": {"lte": "b"}}) == ["f1", "f2"]
    assert match({"metadata.missing": None}) == ["f1", "f2", "f3"]
    assert match({"metadata.none": None}) == ["f1", "f2", "f3"]
    assert match({"metadata.tag": {"ne": None}}) == ["f1", "f2", "f3"]
    assert match({"metadata.flag": True}) == ["f1"]
    assert match({"metadata.tag": "1"}) == [] and match({"metadata.n": "1"}) == []
    assert match({"source": "s-1"}) == ["f1"]
    assert match({"name": "Bot"}) == ["f2"] and match({"name": None}) == ["f1", "f3"]
    assert match({"session_id": {"ne": None}}) == ["f3"]
    assert match({"role": {"nin": ["user"]}}) == ["f2"]
    assert match({"created_at": {"lt": "2024-06-02"}}) == ["f1"]
    assert match({"kind": "turn", "role": "user", "created_at": {"gt": "2024-06-01T12:00:00Z"}}) == ["f3"]


# -- derived memories and their jobs ----------------------------------------------------


def derived(text: str, *turns: Record, slot: str | None = None, day: int = 1, session: str | None = None,
            reason: str | None = None, kind: str = "fact") -> NewRecord:
    """A memory distilled from `turns`, as reconciliation hands it to complete_job."""
    return NewRecord(
        id=new_id(), scope=Scope(turns[0].user_id, turns[0].agent_id, session or turns[0].session_id), kind=kind,
        text=text, created_at=ts(day), recorded_at=AT, sources=list(dict.fromkeys(s for t in turns for s in t.sources)),
        metadata={"reason": reason} if reason else {}, slot=slot, derived_from=tuple(t.id for t in turns),
    )


def outcome(*inserts: NewRecord, retirements: tuple[Retirement, ...] = (),
            confirmations: dict[str, tuple[str, ...]] | None = None,
            sufficient: set[tuple[str, str]] | None = None, revivals: tuple[str, ...] = ()) -> JobOutcome:
    """As reconciliation hands it over: a memory distilled from one turn is said by that
    turn alone (its link suffices)."""
    vectors = EMBED.embed([r.text for r in inserts]) if inserts else np.zeros((0, EMBED.dim), dtype=np.float32)
    alone = {(r.id, r.derived_from[0]) for r in inserts if len(r.derived_from) == 1}
    return JobOutcome(list(inserts), vectors, list(retirements), confirmations or {}, list(revivals),
                      frozenset(alone | (sufficient or set())))


def enqueue(store, *records: NewRecord) -> list[Record]:
    return store.insert(list(records), EMBED.embed([r.text for r in records]), actor="tester", enqueue=True)


def claim(store, day: int = 2, hour: int = 0):
    return store.claim_job(now=ts(day, hour), lease_until=ts(day, hour + 1))


def distil(store, *turns: NewRecord, make, day: int = 2) -> list[Record]:
    """Enqueue turns, claim their job and complete it with make(stored turns) -> outcome."""
    stored = enqueue(store, *turns)
    job = claim(store, day)
    assert job is not None and job.record_ids == [t.id for t in stored]
    return stored, store.complete_job(job, make(stored), at=ts(day, 1), actor="distill:test")


NO_JOBS = {"pending": 0, "running": 0, "failed": 0, "oldest": None, "oldest_waiting": None, "recent_errors": []}


def test_enqueue_claim_lease_retry_and_fail(store):
    put(store, new("no job for this one"))
    assert store.job_stats() == NO_JOBS
    assert enqueue(store) == [] and store.job_stats() == NO_JOBS  # nothing inserted, nothing queued
    t1, t2 = enqueue(store, new("first turn", session="s1", agent="bot"), new("second turn", session="s1",
                                                                                agent="bot"))
    assert store.job_stats() == {**NO_JOBS, "pending": 1, "oldest": AT, "oldest_waiting": AT}
    assert store.job_stats(now=AT)["ready"] == 1
    assert store.job_stats(now="2024-05-31T23:59:59.000000Z")["ready"] == 0  # not before it was queued
    assert store.claim_job(now="2024-05-31T23:59:59.000000Z", lease_until=ts(2)) is None

    job = store.claim_job(now=ts(2), lease_until=ts(2, 1))
    assert (job.scope, job.record_ids, job.attempts) == (Scope("alice", "bot", "s1"), [t1.id, t2.id], 1)
    assert store.claim_job(now=ts(2), lease_until=ts(2, 1)) is None  # leased
    assert store.job_stats(now=ts(2)) == {**NO_JOBS, "running": 1, "ready": 1, "oldest": AT, "oldest_waiting": AT}

    again = store.claim_job(now=ts(2, 1), lease_until=ts(2, 2))  # the lease ran out: its worker died
    assert (again.id, again.attempts) == (job.id, 2)

    store.fail_job(again, "provider: connection refused", at=ts(2, 1), retry_at=ts(2, 3))
    stats = store.job_stats(now=ts(2, 2))
    assert (stats["pending"], stats["running"], stats["ready"]) == (1, 0, 0)  # waiting out its backoff
    assert stats["recent_errors"] == [{"job": job.id, "error": "provider: connection refused"}]
    assert store.job_stats(now=ts(2, 3))["ready"] == 1
    assert store.claim_job(now=ts(2, 2), lease_until=ts(2, 3)) is None
    third = store.claim_job(now=ts(2, 3), lease_until=ts(2, 4))
    assert (third.id, third.attempts) == (job.id, 3)

    store.fail_job(third, "x" * 5000, at=ts(2, 4), retry_at=None)  # given up: parked as failed
    stats = store.job_stats(now=ts(30))
    assert (stats["pending"], stats["running"], stats["failed"], stats["ready"]) == (0, 0, 1, 0)
    assert (stats["oldest"], stats["oldest_waiting"]) == (AT, None)  # a failed job is not waiting
    assert stats["recent_errors"] == [{"job": job.id, "error": "x" * 1000}]
    assert store.claim_job(now=ts(30), lease_until=ts(30, 1)) is None
    assert store.job_stats("bob") == NO_JOBS and store.job_stats("alice")["failed"] == 1


def test_jobs_are_claimed_oldest_first_across_users(store):
    enqueue(store, new("alice turn"))
    enqueue(store, new("bob turn", user="bob"))
    enqueue(store, new("alice again"))
    claimed = [claim(store) for _ in range(4)]
    assert [j.scope.user_id for j in claimed[:3]] == ["alice", "bob", "alice"]
    assert claimed[0].id < claimed[1].id < claimed[2].id and claimed[3] is None
    assert store.job_stats("alice")["running"] == 2 and store.job_stats("bob")["running"] == 1


def test_complete_job_writes_memories_linked_to_their_turns_and_ends_the_job(store):
    (turn,), written = distil(store, new("I live in Paris", sources=["msg-1"]), make=lambda turns: outcome(
        derived("The user lives in Paris", *turns, slot="user|residence", reason="first said"),
        derived("The user talked about Paris", *turns, kind="event"),
    ))
    paris, event = written
    assert [r.text for r in written] == ["The user lives in Paris", "The user talked about Paris"]
    assert (paris.kind, paris.sources, paris.valid_to, paris.expired_at) == ("fact", ["msg-1"], None, None)
    assert store.get(paris.id) == paris and event.kind == "event"
    assert store.job_stats(now=ts(3)) == {**NO_JOBS, "ready": 0}  # the job ended with its writes
    assert claim(store, 3) is None
    (add,) = store.history(paris.id)
    assert (add.event, add.text, add.actor, add.reason) == ("add", "The user lives in Paris", "distill:test",
                                                            "first said")
    assert store.history(turn.id)[0].reason is None

    assert [r.id for r in store.records_by_ids([event.id, "mem_nope", turn.id, paris.id], "alice")] == [
        turn.id, paris.id, event.id]
    assert store.records_by_ids([turn.id, paris.id], "bob") == [] and store.records_by_ids([], "alice") == []
    assert store.slot_memories("alice", ["user|residence", "user|employer"]) == [paris]
    assert store.slot_memories("bob", ["user|residence"]) == [] and store.slot_memories("alice", []) == []
    hashes = [content_hash(paris.text), content_hash(turn.text), content_hash(event.text)]
    assert store.current_derived("alice", hashes) == [paris, event]  # turns are not derived memories
    assert store.current_derived("bob", hashes) == [] and store.current_derived("alice", []) == []


def test_complete_job_retires_superseded_and_retracted_memories(store):
    _, (paris, rex) = distil(store, new("I live in Paris and my dog is Rex", day=1), make=lambda turns: outcome(
        derived("The user lives in Paris", *turns, slot="user|residence", day=1),
        derived("The user has a dog named Rex", *turns, slot="user|pet|rex", day=1),
    ))
    berlin_id = new_id()

    def moved(turns):
        berlin = derived("The user lives in Berlin", *turns, slot="user|residence", day=5,
                         reason=f"supersedes {paris.id}")
        return outcome(replace(berlin, id=berlin_id), retirements=(
            Retirement(paris.id, ts(5), "supersede", f"superseded by {berlin_id}"),
            Retirement(rex.id, ts(4), "retract", f"retracted by {turns[0].id}"),
            Retirement("mem_gone", ts(4), "retract", "retracted by nothing"),  # erased meanwhile: skipped
        ))

    (turn,), (berlin,) = distil(store, new("I moved to Berlin; Rex died", day=5), make=moved, day=6)
    retired = store.get(paris.id)
    assert (retired.valid_to, retired.expired_at, retired.updated_at) == (ts(5), ts(6, 1), ts(6, 1))
    assert retired.text == paris.text and retired.created_at == paris.created_at
    assert [(v.event, v.reason, v.actor, v.at) for v in store.history(paris.id)] == [
        ("add", None, "distill:test", AT), ("supersede", f"superseded by {berlin.id}", "distill:test", ts(6, 1))]
    assert store.history(paris.id)[-1].text == "The user lives in Paris"  # retired, not erased
    assert store.history(paris.id)[-1].content_hash == content_hash(paris.text)
    assert [(v.event, v.reason) for v in store.history(rex.id)] == [
        ("add", None), ("retract", f"retracted by {turn.id}")]
    assert store.get(rex.id).valid_to == ts(4)
    assert store.history(berlin.id)[0].reason == f"supersedes {paris.id}"
    assert store.slot_memories("alice", ["user|residence", "user|pet|rex"]) == [berlin]
    assert store.current_derived("alice", [content_hash(paris.text), content_hash(berlin.text)]) == [berlin]

    # what was true when: the filters search's as_of and its default compile to, on every backend
    scope = Scope("alice")
    derived_only = parse({"kind": "fact"})
    assert texts(store.list(scope, [*derived_only, valid_at(ts(3))], 10, 0)) == [
        "The user lives in Paris", "The user has a dog named Rex"]
    assert texts(store.list(scope, [*derived_only, valid_at(ts(4, 12))], 10, 0)) == ["The user lives in Paris"]
    assert texts(store.list(scope, [*derived_only, valid_at(ts(5))], 10, 0)) == ["The user lives in Berlin"]
    assert texts(store.list(scope, [*derived_only, current()], 10, 0)) == ["The user lives in Berlin"]
    assert ids_of(store, store.keyword_search(scope, "lives", [*derived_only, valid_at(ts(3))], 10), scope) == [
        paris.id]
    assert ids_of(store, store.keyword_search(scope, "lives", [*derived_only, current()], 10), scope) == [berlin.id]
    near = store.vector_search(scope, vec("The user lives in Paris"), [*derived_only, valid_at(ts(3))], 10)
    assert set(ids_of(store, near, scope)) == {paris.id, rex.id}

    # retiring what is already retired changes nothing
    distil(store, new("I moved to Berlin again", day=7), day=8, make=lambda turns: outcome(
        retirements=(Retirement(paris.id, ts(7), "supersede", "superseded by someone else"),)))
    assert store.get(paris.id) == retired and len(store.history(paris.id)) == 2


def test_confirmations_add_sources_and_erasure_follows_them(store):
    """A turn that says a memory's very text again (a link that suffices) keeps the memory
    when its first source is erased; the last one erased takes it too."""
    _, (lisbon,) = distil(store, new("I live in Lisbon", sources=["msg-1"]), make=lambda turns: outcome(
        derived("The user lives in Lisbon", *turns, slot="user|residence")))
    (second,), written = distil(store, new("I live in Lisbon", sources=["msg-2"], day=2), day=3,
                                make=lambda turns: outcome(confirmations={lisbon.id: (turns[0].id,)},
                                                           sufficient={(lisbon.id, turns[0].id)}))
    assert written == []
    assert sorted(store.get(lisbon.id).sources) == ["msg-1", "msg-2"]
    first = store.records_by_ids([lisbon.id], "alice")  # unchanged otherwise
    assert [v.event for v in store.history(lisbon.id)] == ["add"] and first[0].text == lisbon.text

    turns = [r for r in store.list(Scope("alice"), parse({"kind": "turn"}), 10, 0)]
    assert store.delete(turns[0].id, at=ts(9), actor="alice")  # one source erased: the other says it alone
    assert store.get(lisbon.id).sources == ["msg-2"]
    assert store.job_stats()["pending"] == 0  # nothing to re-derive
    assert store.delete(second.id, at=ts(10), actor="alice")  # the last one: the memory goes too
    assert store.get(lisbon.id) is None
    assert store.slot_memories("alice", ["user|residence"]) == []
    history = store.history(lisbon.id)
    assert [(v.event, v.reason) for v in history] == [("add", None), ("delete", "a source was erased")]
    assert all(v.text is None for v in history) and history[-1].at == ts(10)
    assert store.keyword_search(Scope("alice"), "Lisbon", [], 10) == []
    assert store.vector_search(Scope("alice"), vec("The user lives in Lisbon"), [], 10) == []


def test_a_memory_no_live_source_says_alone_is_erased_and_its_other_sources_queued_again(store):
    """A memory of two turns (a summary, a fact said over two turns) may quote either:
    erasing one erases it, and what is left is distilled again."""
    t1, t2 = enqueue(store, new("I adopted a cat", session="s1"), new("Her name is Zuzu", session="s1"))
    job = claim(store)
    store.complete_job(job, outcome(derived("The user has a cat named Zuzu", t1, t2)), at=ts(2, 1), actor="d")
    zuzu = [r for r in store.list(Scope("alice"), parse({"kind": "fact"}), 10, 0)][0]
    assert store.job_stats()["pending"] == 0
    assert store.delete(t2.id, at=ts(9), actor="alice")
    assert store.get(zuzu.id) is None
    assert [(v.event, v.reason) for v in store.history(zuzu.id)] == [("add", None), ("delete", "a source was erased")]
    assert store.keyword_search(Scope("alice"), "Zuzu", [], 10) == []
    again = claim(store, 10)
    assert again is not None and again.record_ids == [t1.id] and again.scope == Scope("alice", None, "s1")


def test_a_memory_with_an_erased_turn_is_not_written_by_its_job(store):
    """A turn erased while its job runs: what was distilled from it is not written (its
    text may quote the erased turn); the job's other turns are distilled again."""
    t1, t2 = enqueue(store, new("I adopted a cat"), new("Her name is Zuzu"))
    job = claim(store)
    assert store.delete(t2.id, at=ts(2), actor="alice")
    written = store.complete_job(job, outcome(derived("The user has a cat named Zuzu", t1, t2),
                                              derived("The user adopted a cat", t1)), at=ts(2, 1), actor="d")
    assert [r.text for r in written] == ["The user adopted a cat"]
    again = claim(store, 10)
    assert again is not None and again.record_ids == [t1.id]


def test_erasing_a_turn_undoes_what_its_memories_did(store):
    _, (paris, rex) = distil(store, new("I live in Paris with my dog Rex"), make=lambda turns: outcome(
        derived("The user lives in Paris", *turns, slot="user|residence"),
        derived("The user has a dog named Rex", *turns, slot="user|pet|rex"),
    ))
    berlin_id = new_id()
    (turn,), (berlin,) = distil(store, new("I moved to Berlin; Rex died", day=5), day=6, make=lambda turns: outcome(
        replace(derived("The user lives in Berlin", *turns, slot="user|residence", day=5), id=berlin_id),
        retirements=(Retirement(paris.id, ts(5), "supersede", f"superseded by {berlin_id}"),
                     Retirement(rex.id, ts(4), "retract", f"retracted by {turns[0].id}"))))
    assert store.delete(turn.id, at=ts(9), actor="alice")
    assert store.get(berlin.id) is None
    assert [v.event for v in store.history(berlin.id)] == ["add", "delete"]
    for memory in (paris, rex):  # true again: what retired them was erased
        again = store.get(memory.id)
        assert (again.valid_to, again.expired_at, again.updated_at) == (None, None, ts(9))
        assert [(v.event, v.reason) for v in store.history(memory.id)][-1] == ("reinstate",
                                                                              "what retired it was erased")
    assert store.slot_memories("alice", ["user|residence", "user|pet|rex"]) == [store.get(paris.id),
                                                                                 store.get(rex.id)]


def test_a_job_forgotten_before_it_completes_writes_nothing(store):
    _, (paris,) = distil(store, new("I live in Paris", session="s0"), make=lambda turns: outcome(
        derived("The user lives in Paris", *turns, slot="user|residence")))
    (turn,) = enqueue(store, new("I moved to Rome", session="s1", day=3))
    job = claim(store, 4)
    assert store.forget(Scope("alice", session_id="s1")) == 1  # the job's turn, and the job with it
    assert store.job_stats() == NO_JOBS
    rome = derived("The user lives in Rome", turn, slot="user|residence", day=3)
    got = store.complete_job(job, outcome(rome, retirements=(
        Retirement(paris.id, ts(3), "supersede", f"superseded by {rome.id}"),), confirmations={paris.id: (turn.id,)}),
        at=ts(4, 1), actor="distill:test")
    assert got == []
    assert store.get(rome.id) is None and store.history(rome.id) == []
    assert store.get(paris.id) == paris and len(store.history(paris.id)) == 1
    assert store.count(Scope("alice")) == 2

    (turn,) = enqueue(store, new("I moved to Oslo", day=5))
    job = claim(store, 6)
    assert store.forget(Scope("alice")) == 3  # the whole user
    oslo = derived("The user lives in Oslo", turn, slot="user|residence", day=5)
    assert store.complete_job(job, outcome(oslo), at=ts(6, 1), actor=None) == []
    assert store.count(Scope("alice")) == 0 and store.job_stats() == NO_JOBS


def test_complete_job_skips_memories_of_turns_erased_meanwhile(store):
    one, two = enqueue(store, new("I live in Paris", session="s1"), new("I work at Airbus", session="s1"))
    job = claim(store)
    assert store.delete(one.id, at=ts(2), actor="alice")
    written = store.complete_job(job, outcome(
        derived("The user lives in Paris", one, slot="user|residence"),
        derived("The user works at Airbus", two, slot="user|employer"),
        derived("The user lives in Paris and works at Airbus", one, two, kind="summary"),
    ), at=ts(2, 1), actor=None)
    # the summary may quote the erased turn: not written; its live turn is distilled again
    assert [r.text for r in written] == ["The user works at Airbus"]
    again = claim(store, 3)
    assert again is not None and again.record_ids == [two.id] and again.scope == Scope("alice", None, "s1")
    assert store.delete(two.id, at=ts(3), actor="alice")
    assert store.get(written[0].id) is None


def test_forget_clears_jobs_and_unlinks_turns_outside_the_scope(store):
    _, (cat,) = distil(store, new("We have a cat named Luna", session="s1"), make=lambda turns: outcome(
        derived("The user has a cat named Luna", *turns, slot="user|pet|luna")))
    (again,), (tea,) = distil(store, new("Luna the cat loves tea", session="s2", sources=["m2"]), day=3,
                              make=lambda turns: outcome(derived("The user likes tea", *turns),
                                                         confirmations={cat.id: (turns[0].id,)},
                                                         sufficient={(cat.id, turns[0].id)}))
    assert len(store.get(cat.id).sources) == 2
    enqueue(store, new("queued in s1", session="s1", day=4))
    enqueue(store, new("queued in s2", session="s2", day=4))
    enqueue(store, new("bob's queued turn", user="bob", session="s2"))
    assert store.job_stats("alice")["pending"] == 2

    assert store.forget(Scope("alice", session_id="s2")) == 3  # a turn, its memory, a queued turn
    assert store.get(tea.id) is None and store.get(again.id) is None
    kept = store.get(cat.id)  # in s1: keeps its own source, loses the one forgotten
    assert kept is not None and "m2" not in kept.sources and len(kept.sources) == 1
    assert store.job_stats("alice")["pending"] == 1 and store.job_stats("bob")["pending"] == 1
    assert claim(store, 5).scope == Scope("alice", session_id="s1")

    assert store.forget(Scope("alice")) == 3
    assert store.job_stats("alice") == NO_JOBS and store.job_stats("bob")["pending"] == 1
    assert store.slot_memories("alice", ["user|pet|luna"]) == []


def test_reset_clears_derivations_and_jobs(store):
    _, (fact,) = distil(store, new("I live in Paris"), make=lambda turns: outcome(
        derived("The user lives in Paris", *turns, slot="user|residence")))
    enqueue(store, new("pending", user="bob"))
    store.reset()
    assert store.job_stats() == NO_JOBS and claim(store) is None
    assert store.slot_memories("alice", ["user|residence"]) == []
    # a memory made again after a reset is not tied to links of the erased one
    (turn,), (again,) = distil(store, new("I live in Rome"), make=lambda turns: outcome(
        derived("The user lives in Rome", *turns, slot="user|residence")))
    assert store.delete(turn.id, at=ts(3), actor=None) and store.get(again.id) is None


def links(store) -> list[tuple[str, str]]:
    """Every (memory, turn) derivation row. No Store method lists stray ones (export_derived
    joins the live memories), so this reads the table itself."""
    query = "SELECT src, dst FROM links WHERE type = 'derived_from' ORDER BY 1, 2"
    rows = store._conn().execute(query).fetchall() if hasattr(store, "_conn") else store._all(query)
    return [tuple(row) for row in rows]


def dangling(store) -> list[tuple[str, str]]:
    return [(m, t) for m, t in links(store) if store.get(m) is None or store.get(t) is None]


def test_no_link_outlives_its_memory_or_its_turn(store):
    (one, two), (paris, summary) = distil(
        store, new("I live in Paris", session="s1"), new("I work at Airbus", session="s2"),
        make=lambda turns: outcome(derived("The user lives in Paris", turns[0], slot="user|residence"),
                                   derived("The user lives in Paris and works at Airbus", *turns, kind="summary")))
    assert links(store) == sorted([(paris.id, one.id), (summary.id, one.id), (summary.id, two.id)])

    assert store.delete(paris.id, at=ts(3), actor="alice")  # a derived memory itself
    assert dangling(store) == [] and links(store) == sorted([(summary.id, one.id), (summary.id, two.id)])

    (three,) = enqueue(store, new("I live in Paris, really", session="s1", day=4))
    job = claim(store, 5)
    assert store.delete(summary.id, at=ts(5), actor="alice")  # deleted while the job confirms it
    assert store.complete_job(job, outcome(confirmations={summary.id: (three.id,)}), at=ts(5, 1), actor=None) == []
    assert store.get(summary.id) is None and links(store) == [] and dangling(store) == []

    _, (tea,) = distil(store, new("I like tea", session="s2", day=6), day=7, make=lambda turns: outcome(
        derived("The user likes tea", one, *turns)))
    store.forget(Scope("alice", session_id="s2"))  # tea may quote the forgotten turn: erased, s1's distilled again
    assert dangling(store) == [] and links(store) == [] and store.get(tea.id) is None
    later = store.claim_job(now="2999-01-01T00:00:00.000000Z", lease_until="2999-01-01T01:00:00.000000Z")
    assert later.record_ids == [one.id]  # queued as forget ran (the clock's now)
    _, (oslo,) = distil(store, new("I live in Oslo", user="bob"), day=9, make=lambda turns: outcome(
        derived("The user lives in Oslo", *turns)))
    store.forget(Scope("bob"))
    assert links(store) == []


def test_history_shows_the_live_text_of_every_version_that_has_it(store):
    _, (paris,) = distil(store, new("I live in Paris"), make=lambda turns: outcome(
        derived("The user lives in Paris", *turns, slot="user|residence")))
    berlin_id = new_id()
    (turn,), _ = distil(store, new("I moved to Berlin", day=5), day=6, make=lambda turns: outcome(
        replace(derived("The user lives in Berlin", *turns, slot="user|residence", day=5), id=berlin_id),
        retirements=(Retirement(paris.id, ts(5), "supersede", superseded_by(berlin_id)),)))
    assert [(v.event, v.text) for v in store.history(paris.id)] == [
        ("add", paris.text), ("supersede", paris.text)]  # retired, not erased: its text stays
    assert store.delete(turn.id, at=ts(7), actor="alice")  # Berlin goes, Paris is true again
    assert [(v.event, v.text) for v in store.history(paris.id)] == [
        ("add", paris.text), ("supersede", paris.text), ("reinstate", paris.text)]
    store.update(paris.id, "The user lives in Paris, France", vec("Paris, France"), at=ts(8), actor="alice",
                 reason="fix")
    assert [(v.event, v.text) for v in store.history(paris.id)] == [
        ("add", paris.text), ("supersede", paris.text), ("reinstate", paris.text),
        ("update", "The user lives in Paris, France")]
    store.delete(paris.id, at=ts(9), actor="alice")
    assert [v.text for v in store.history(paris.id)] == [None] * 5


def test_a_retraction_by_several_turns_is_undone_when_all_of_them_are_erased(store):
    _, (rex, luna) = distil(store, new("My dogs are Rex and Luna"), make=lambda turns: outcome(
        derived("The user has a dog named Rex", *turns, slot="user|pet|rex"),
        derived("The user has a dog named Luna", *turns, slot="user|pet|luna")))
    (one, two), _ = distil(store, new("Sadly Rex", session="s1", day=3), new("died last week", session="s2", day=3),
                           day=4, make=lambda turns: outcome(retirements=(
                               Retirement(rex.id, ts(3), "retract", retracted_by([t.id for t in turns])),)))
    (three, four), _ = distil(store, new("Luna", session="s1", day=5), new("ran away", session="s2", day=5),
                              day=6, make=lambda turns: outcome(retirements=(
                                  Retirement(luna.id, ts(5), "retract", retracted_by([t.id for t in turns])),)))
    assert store.history(rex.id)[-1].reason == f"retracted by {one.id}, {two.id}"  # ids only, no text
    assert store.delete(one.id, at=ts(7), actor="alice")  # one of the two: still said by the other
    assert store.get(rex.id).valid_to == ts(3)
    assert store.delete(two.id, at=ts(8), actor="alice")  # and the other: nothing retracts it now
    assert store.get(rex.id).valid_to is None and store.history(rex.id)[-1].event == "reinstate"

    store.forget(Scope("alice", session_id="s2"))  # erases `four`; `three` still says it
    assert store.get(luna.id).valid_to == ts(5)
    store.forget(Scope("alice", session_id="s1"))  # erases `three`
    assert store.get(luna.id).valid_to is None and store.history(luna.id)[-1].event == "reinstate"


def test_forgetting_a_session_undoes_what_its_memories_did_elsewhere(store):
    _, (paris, rex) = distil(store, new("I live in Paris with my dog Rex", session="s1"),
                             make=lambda turns: outcome(
                                 derived("The user lives in Paris", *turns, slot="user|residence"),
                                 derived("The user has a dog named Rex", *turns, slot="user|pet|rex")))
    berlin_id = new_id()
    (turn,), (berlin,) = distil(store, new("I moved to Berlin; Rex died", session="s2", day=5), day=6,
                                make=lambda turns: outcome(
        replace(derived("The user lives in Berlin", *turns, slot="user|residence", day=5), id=berlin_id),
        retirements=(Retirement(paris.id, ts(5), "supersede", superseded_by(berlin_id)),
                     Retirement(rex.id, ts(4), "retract", retracted_by([turns[0].id])))))
    assert store.forget(Scope("alice", session_id="s2")) == 2
    assert store.get(berlin.id) is None
    for memory in (paris, rex):  # true again: what retired them was forgotten
        again = store.get(memory.id)
        assert (again.valid_to, again.expired_at) == (None, None)
        assert [(v.event, v.reason) for v in store.history(memory.id)][-1] == ("reinstate",
                                                                              "what retired it was erased")
    assert store.slot_memories("alice", ["user|residence", "user|pet|rex"]) == [store.get(paris.id),
                                                                                 store.get(rex.id)]


def test_a_memory_of_a_turn_erased_before_its_job_ends_is_not_written(store):
    one, two = enqueue(store, new("I live in Paris", sources=["msg-1"]), new("I work at Airbus", sources=["msg-2"]))
    job = claim(store)
    assert store.delete(one.id, at=ts(2), actor="alice")
    assert store.complete_job(job, outcome(
        derived("The user lives in Paris and works at Airbus", one, two, kind="summary")), at=ts(2, 1),
        actor=None) == []  # it may quote the erased turn
    assert claim(store, 3).record_ids == [two.id]  # what is left is distilled again


def test_a_cube_keeps_when_a_memory_stopped_being_true(store_factory, tmp_path):
    from engramdb import cube

    source, target = store_factory(), store_factory()
    _, (paris,) = distil(source, new("I live in Paris"), make=lambda turns: outcome(
        derived("The user lives in Paris", *turns, slot="user|residence")))
    distil(source, new("I moved to Berlin", day=5), day=6, make=lambda turns: outcome(
        derived("The user lives in Berlin", *turns, slot="user|residence", day=5),
        retirements=(Retirement(paris.id, ts(5), "supersede", superseded_by("mem_berlin")),)))
    path = tmp_path / "alice.cube.jsonl"
    assert cube.write(path, source.export(Scope("alice")), scope=Scope("alice"), embedder=(EMBED.name, EMBED.dim),
                      exported_at=AT) == 4
    _, items = cube.read(path)
    assert target.import_records(items, np.stack([i.vector for i in items])) == 4
    for item in items:
        got, original = target.get(item.record.id), source.get(item.record.id)
        assert (got.valid_to, got.expired_at, got.updated_at) == (original.valid_to, original.expired_at,
                                                                  original.updated_at)
        assert target.history(item.record.id) == source.history(item.record.id)
    assert (target.get(paris.id).valid_to, target.get(paris.id).expired_at) == (ts(5), ts(6, 1))
    assert [v.text for v in target.history(paris.id)] == [paris.text, paris.text]


def test_jobs_carry_their_kind(store):
    t1, t2 = enqueue(store, new("I adopted a cat", session="s1"), new("Her name is Zuzu", session="s1"))
    job = claim(store)
    assert job.kind == "distill"
    store.complete_job(job, outcome(derived("The user has a cat named Zuzu", t1, t2)), at=ts(3, 1), actor="d")
    assert store.delete(t2.id, at=ts(4), actor="alice")
    again = claim(store, 5)
    assert (again.kind, again.record_ids) == ("rederive", [t1.id])


def test_a_queued_job_forgets_an_erased_turn_and_its_error(store):
    t1, t2 = enqueue(store, new("I adopted a cat"), new("Her name is Zuzu"))
    job = claim(store)
    store.fail_job(job, "provider: the model answered 'Her name is Zuzu' in garbage", at=ts(2), retry_at=ts(3))
    assert store.job_stats()["recent_errors"]
    assert store.delete(t2.id, at=ts(2, 1), actor="alice")
    again = claim(store, 4)
    assert again.record_ids == [t1.id] and store.job_stats()["recent_errors"] == []
    assert store.delete(t1.id, at=ts(4, 1), actor="alice")
    assert store.job_stats()["pending"] + store.job_stats()["running"] == 0  # nothing left to distil


def test_a_backlog_is_claimed_in_batches_of_one_scope_and_kind(store):
    firsts = [enqueue(store, new(f"turn {i}", session="s1"))[0] for i in range(3)]
    other = enqueue(store, new("another session", session="s2"))[0]
    later = enqueue(store, new("turn 3", session="s1"))[0]
    job = store.claim_job(now=ts(2), lease_until=ts(2, 1), batch=3)
    assert job.record_ids == [t.id for t in firsts] and len(job.ids) == 3
    assert store.job_stats(now=ts(2))["running"] == 3
    store.fail_job(job, "provider: down", at=ts(2), retry_at=ts(3))  # all of them, retried together
    assert store.job_stats()["pending"] == 5
    job = store.claim_job(now=ts(3), lease_until=ts(3, 1), batch=16)
    assert job.record_ids == [t.id for t in firsts] + [later.id]  # s2's job is not one of them
    written = store.complete_job(job, outcome(derived("The user said turn 0", firsts[0])), at=ts(3), actor="d")
    assert [r.text for r in written] == ["The user said turn 0"]
    left = store.claim_job(now=ts(4), lease_until=ts(4, 1), batch=16)
    assert left.record_ids == [other.id] and left.also == ()


# -- notes and relates_to links (issue 12) ------------------------------------------------------


def test_notes_links_and_their_take_back_on_erasure(store_factory):
    from engramdb.living.notes import Draft, Evolution, Made, NotesBatch, Relation

    store = store_factory()
    a, b, c = put(store, new("pottery class in Boston"), new("clay bowl in Boston"), new("glaze for the bowl"))
    other = put(store, new("bob's pottery", user="bob"))[0]
    work = store.note_work(10)
    assert work.user_id == "alice" and set(work.fresh) == {a.id, b.id, c.id} and work.queued == ()
    made = [Made(r.id, content_hash(r.text), Draft((r.text.split()[0],), ("pottery",), f"about {r.id}"))
            for r in (a, b, c)]
    store.write_notes("alice", NotesBatch(made=made, links=[Relation(c.id, a.id, "shared entities: bowl", 0.7),
                                                             Relation(c.id, b.id, "similar meaning (0.8)", 0.8),
                                                             Relation(c.id, other.id, "another user", 0.9)],
                                          evolved=[Evolution(a.id, Draft(("pottery",), ("pottery", "glaze"),
                                                                         "about a; linked with glaze"), (c.id,),
                                                             f"note evolved: {c.id} joined its neighbourhood")],
                                          mark=work.mark), at=AT, actor="notes")
    assert store.note_work(10).user_id == "bob"  # alice's are done; bob's is next
    notes = store.notes("alice", [a.id, b.id, c.id, other.id])
    assert set(notes) == {a.id, b.id, c.id}  # another user's memory is never read
    assert [(v.version, v.tags, v.causes) for v in notes[a.id]] == [(1, ("pottery",), ()),
                                                                   (2, ("pottery", "glaze"), (c.id,))]
    assert store.history(a.id)[-1].event == "note"
    related = store.relations("alice", [c.id])
    assert {(r.src, r.dst, r.reason, r.strength) for r in related} >= {
        (c.id, a.id, "shared entities: bowl", 0.7), (c.id, b.id, "similar meaning (0.8)", 0.8)}
    # moving the user carries every note version and link
    target = store_factory()
    target.import_records(list(store.export(Scope("alice"))), np.stack([vec(r.text) for r in (a, b, c)]))
    target.import_derived("alice", store.export_derived("alice"))
    assert target.notes("alice", [a.id, b.id, c.id]) == notes
    assert target.relations("alice", [a.id, b.id, c.id]) == store.relations("alice", [a.id, b.id, c.id])
    # erasing c takes back its links and the note version it shaped, and queues a and b
    assert store.delete(c.id, at=AT, actor="tester")
    after = store.notes("alice", [a.id, b.id])
    assert [v.version for v in after[a.id]] == [1] and store.relations("alice", [a.id, b.id]) == []
    assert set(store.note_work(10).queued) == {a.id, b.id}
    store.queue_notes("alice", [a.id], reason="text updated", at=AT)
    store.forget(Scope("alice"))
    assert store.notes("alice", [a.id, b.id]) == {} and store.note_work(10).user_id == "bob"


def test_note_heads_are_the_latest_unshaped_and_the_latest_version(store):
    from engramdb.living.notes import Draft, Evolution, Made, NotesBatch

    a, b, c, d = put(store, new("pottery in Boston"), new("clay bowl"), new("glaze"), new("kiln"))
    other = put(store, new("bob's kiln", user="bob"))[0]

    def write(batch: NotesBatch, user: str = "alice") -> None:
        store.write_notes(user, batch, at=AT, actor="notes")

    def made(r, tag: str, *, remade: bool = False) -> Made:
        return Made(r.id, content_hash(r.text), Draft((r.text.split()[0],), (tag,), f"about {tag}"), remade=remade)

    write(NotesBatch(made=[made(r, "v1") for r in (a, b, c, d)]))
    write(NotesBatch(made=[made(other, "bob")]), "bob")
    for n in (2, 3):  # a: shaped twice by b; c: made again from its own text, then shaped by d
        write(NotesBatch(evolved=[Evolution(a.id, Draft(("pottery",), (f"v{n}",), f"shaped {n}"), (b.id,), "evolved")]))
    write(NotesBatch(made=[made(c, "v2", remade=True)]))
    write(NotesBatch(evolved=[Evolution(c.id, Draft(("glaze",), ("v3",), "shaped"), (d.id,), "evolved")]))
    every = store.notes("alice", [a.id, b.id, c.id, d.id])
    assert [v.version for v in every[a.id]] == [1, 2, 3] and [v.version for v in every[c.id]] == [1, 2, 3]
    heads = store.note_heads("alice", [a.id, b.id, c.id, d.id, other.id, "mem_gone"])
    assert set(heads) == {a.id, b.id, c.id, d.id}  # another user's note is never read
    assert heads[a.id] == [every[a.id][0], every[a.id][2]]
    assert heads[b.id] == every[b.id] and len(heads[b.id]) == 1
    assert heads[c.id] == [every[c.id][1], every[c.id][2]]
    assert store.note_heads("bob", [other.id])[other.id][0].tags == ("bob",)
    assert store.note_heads("alice", []) == {}


# -- vitals and states (living/vitals.py, stores/vitals_sql.py) ---------------------------

def test_vitals_grow_with_recalls_and_feedback_and_skip_what_is_gone(store):
    from engramdb.living.vitals import Vitals

    a, b = put(store, new("vital one"), new("vital two"))
    assert store.vitals([a.id, b.id]) == {}  # never recalled: the defaults, no row
    store.reinforce({a.id: 2, "mem_gone": 1}, at=ts(3))
    store.reinforce({a.id: 1}, at=ts(2))  # an older recall does not move last_recall back
    store.record_feedback({a.id: True, b.id: False, "mem_gone": True})
    store.record_feedback({a.id: True})
    got = store.vitals([a.id, b.id, "mem_gone"])
    assert set(got) == {a.id, b.id}
    assert got[a.id] == Vitals(a.id, strength=4.0, last_recall=ts(3), recalls=3, utility=pytest.approx(0.36),
                               used=2)
    assert got[b.id] == Vitals(b.id, utility=pytest.approx(-0.2), unused=1)


def test_archive_and_revive_are_history_entries_and_only_move_between_active_and_archived(store):
    from engramdb.living.vitals import ACTIVE, ARCHIVED

    turn, = put(store, new("I keep bees"))
    _, (fact,) = distil(store, new("I keep bees too", day=1), make=lambda turns: outcome(
        derived("The user keeps bees", *turns)))
    assert store.get(fact.id).state == ACTIVE
    assert store.set_state([(fact.id, "faded"), ("mem_gone", "faded")], ARCHIVED, at=ts(5), actor=None) == [fact.id]
    assert store.set_state([(turn.id, "not archived")], ACTIVE, at=ts(5), actor=None) == []  # active already
    assert (store.get(fact.id).state, store.get(turn.id).state) == (ARCHIVED, ACTIVE)
    assert store.set_state([(fact.id, "again")], ARCHIVED, at=ts(6), actor=None) == []  # already archived
    assert store.list(Scope("alice"), parse({"state": "archived"}), 10, 0) == [store.get(fact.id)]
    assert store.set_state([(fact.id, "recalled by id")], ACTIVE, at=ts(7), actor="alice") == [fact.id]
    history = store.history(fact.id)
    assert [(v.event, v.reason, v.at) for v in history] == [
        ("add", None, AT), ("archive", "faded", ts(5)), ("revive", "recalled by id", ts(7))]
    assert history[-1].text == fact.text and history[-1].actor == "alice"
    with pytest.raises(ValueError):
        store.set_state([(fact.id, "x")], "erased", at=ts(8), actor=None)


def test_retirements_set_the_state_and_reinstatement_makes_it_active(store):
    _, (paris,) = distil(store, new("I live in Paris"), make=lambda turns: outcome(
        derived("The user lives in Paris", *turns, slot="user|residence")))
    def berlin(turns):
        memory = derived("The user lives in Berlin", *turns, slot="user|residence", day=5)
        return outcome(memory, retirements=(Retirement(paris.id, ts(5), "supersede", superseded_by(memory.id)),))

    (berlin_turn,), (moved,) = distil(store, new("I moved to Berlin", day=5), day=6, make=berlin)
    assert (store.get(paris.id).state, store.get(moved.id).state) == ("superseded", "active")
    assert store.delete(berlin_turn.id, at=ts(9), actor="alice")  # what superseded it is gone: true again
    assert store.get(paris.id).state == "active"


def test_decay_candidates_are_active_derived_memories_not_recalled_since(store):
    from engramdb.living.vitals import ARCHIVED

    turn, = put(store, new("an old turn"))
    _, (old, recalled, archived) = distil(store, new("three facts"), make=lambda turns: outcome(
        derived("old fact", *turns), derived("recalled fact", *turns), derived("archived fact", *turns)))
    store.reinforce({recalled.id: 1, turn.id: 1}, at=ts(20))
    store.set_state([(archived.id, "faded")], ARCHIVED, at=ts(2), actor=None)
    page = store.decay_candidates(before=ts(10), after_rowid=0, limit=10)
    assert [c.id for _, c in page] == [old.id]
    (rowid, candidate), = page
    assert (candidate.kind, candidate.state, candidate.recorded_at, candidate.strength, candidate.last_recall) == (
        "fact", "active", AT, 1.0, None)
    assert store.decay_candidates(before=ts(10), after_rowid=rowid, limit=10) == []
    assert [c.id for _, c in store.decay_candidates(before=ts(21), after_rowid=0, limit=10)] == [old.id, recalled.id]


def test_archived_memories_are_found_by_their_exact_text(store):
    from engramdb.living.vitals import ARCHIVED

    a, b = put(store, new("exact one"), new("exact two"))
    store.set_state([(a.id, "faded"), (b.id, "faded")], ARCHIVED, at=ts(2), actor=None)
    put(store, new("exact one", user="bob"))
    assert store.archived_matching("alice", [content_hash("exact one"), content_hash("nothing")]) == [a.id]
    assert store.archived_matching("bob", [content_hash("exact one")]) == []  # bob's is not archived


def test_erasing_a_memory_erases_its_vitals_by_every_path(store):
    turns = put(store, new("vitals a", session="s1"), new("vitals b", session="s2"), new("vitals c"),
                new("vitals bob", user="bob"))
    store.reinforce({t.id: 1 for t in turns}, at=ts(2))
    store.record_feedback({t.id: True for t in turns})
    store.delete(turns[0].id, at=ts(3), actor="alice")
    store.forget(Scope("alice", session_id="s2"))
    assert set(store.vitals([t.id for t in turns])) == {turns[2].id, turns[3].id}
    store.forget(Scope("alice"))
    assert set(store.vitals([t.id for t in turns])) == {turns[3].id}
    store.reset()
    assert store.vitals([t.id for t in turns]) == {}


def test_export_import_and_migrate_carry_states_and_vitals(store_factory, tmp_path):
    from engramdb import cube
    from engramdb.living.vitals import ARCHIVED
    from engramdb.stores.transfer import copy_store

    source, target, moved = store_factory(), store_factory(), store_factory()
    _, (kept, faded) = distil(source, new("two facts"), make=lambda turns: outcome(
        derived("kept fact", *turns), derived("faded fact", *turns)))
    source.reinforce({kept.id: 3}, at=ts(4))
    source.record_feedback({kept.id: True, faded.id: False})
    source.set_state([(faded.id, "retention 0.01 below 0.05")], ARCHIVED, at=ts(9), actor=None)
    path = tmp_path / "vitals.cube.jsonl"
    cube.write(path, source.export(Scope("alice")), scope=Scope("alice"), embedder=(EMBED.name, EMBED.dim),
               exported_at=AT)
    _, items = cube.read(path)
    target.import_records(items, np.stack([i.vector for i in items]))
    copy_store(source, moved)
    ids = [i.record.id for i in items]
    for other in (target, moved):
        assert other.vitals(ids) == source.vitals(ids) and len(other.vitals(ids)) == 2
        assert [other.get(i).state for i in ids] == [source.get(i).state for i in ids]
        assert other.get(faded.id).state == ARCHIVED
        assert other.history(faded.id) == source.history(faded.id)
        assert other.stats("alice")["by_state"] == {"active": 2, "archived": 1}


# -- the entity graph (stores/graph_sql.py) ------------------------------------------------


def test_graph_edges_are_scoped_guarded_by_text_and_follow_their_memory(store):
    from engramdb.stores.base import Mention

    a, b = put(store, new("I moved here from Sweden"), new("My grandma lives in Sweden"))
    (other,) = put(store, new("Bob's own turn", user="bob"))
    store.write_mentions("alice", [Mention(a.id, content_hash(a.text), ("sweden", "move")),
                                   Mention(b.id, content_hash(b.text), ("sweden", "grandma")),
                                   Mention(b.id + "x", "0" * 16, ("ghost",)),  # no such memory
                                   Mention(other.id, content_hash(other.text), ("bob",))])  # not alice's
    assert store.mentions("alice", [a.id, b.id, other.id]) == {a.id: ("sweden", "move"), b.id: ("sweden", "grandma")}
    assert store.mentions("bob", [a.id, other.id]) == {} and store.graph_size("alice") == 4
    store.write_mentions("alice", [Mention(a.id, "stale", ("norway",))])  # read from another text: not written
    assert store.mentions("alice", [a.id])[a.id] == ("sweden", "move")
    store.write_mentions("alice", [Mention(a.id, content_hash(a.text), ("sweden",))])  # replaced
    assert store.mentions("alice", [a.id])[a.id] == ("sweden",)
    store.update(b.id, "My grandma lives in Oslo", vec("My grandma lives in Oslo"), at=AT, actor="t", reason=None)
    assert b.id not in store.mentions("alice", [b.id]), "a changed text's edges go"
    assert store.delete(a.id, at=AT, actor="t")
    assert store.graph_size("alice") == 0
    exported = store.export_derived("alice")["graph_mentions"]
    assert exported == []
