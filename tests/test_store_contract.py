"""The Store contract: every backend must pass this suite, through Store methods only.

Backends come from conftest.STORE_FACTORIES; the `store` fixture is parametrized over them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from engramdb.ids import new_id
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores import NewRecord
from engramdb.stores.filters import parse
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
