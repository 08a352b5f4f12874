"""The store members of thoughts and reflection (`Derivations.merge_thoughts`,
`Jobs.gather_job`, and a thought following its sources through retirement and
reinstatement), on every backend (conftest.STORE_FACTORIES)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_store_contract import AT, EMBED, new, put

from engramdb.stores.base import REFLECT, JobOutcome, Retirement, superseded_by
from engramdb.types import Scope


@pytest.fixture
def store(store_factory):
    return store_factory()


def thought(text: str, *sources, user: str = "alice"):
    return replace(new(text, user, kind="thought", role=None), derived_from=tuple(s.id for s in sources),
                   sources=[x for s in sources for x in s.sources])


def links(store, memory_id: str) -> list[str]:
    return sorted(link[2] for link in store.export_derived("alice")["links"]
                  if link[0] == memory_id and link[1] == "derived_from")


def last(store, id: str) -> tuple[str, str | None]:
    version = store.history(id)[-1]
    return version.event, version.reason


def test_merge_thoughts_moves_every_source_and_retires_the_absorbed(store):
    t1, t2, t3 = put(store, new("one"), new("two"), new("three"))
    (a,) = put(store, thought("a thought", t1, t2))
    (b,) = put(store, thought("the same thought", t3))
    (foreign,) = put(store, replace(new("bob's", "bob", kind="thought", role=None)))
    assert store.merge_thoughts(b.id, [a.id, b.id, foreign.id, "mem_unknown"], at=AT, actor="t") == [a.id]
    merged = store.get(b.id)
    assert sorted(merged.sources) == sorted([t1.id, t2.id, t3.id]) and merged.valid_to is None
    assert store.get(a.id).valid_to == AT and last(store, a.id) == ("merge", f"merged into {b.id}")
    assert store.get(foreign.id).valid_to is None
    assert store.merge_thoughts(b.id, [a.id], at=AT, actor="t") == []  # merged already
    assert store.merge_thoughts(a.id, [b.id], at=AT, actor="t") == []  # a retired survivor absorbs nothing


def test_a_thought_retires_with_a_superseded_source_and_comes_back_with_it(store):
    (turn,) = put(store, new("I live in Oslo"))
    (fact,) = put(store, replace(new("Alice lives in Oslo", kind="fact", role=None, sources=[turn.id]),
                                 derived_from=(turn.id,)))
    (on_fact,) = put(store, thought("Alice likes the fjords", fact))
    (on_thought,) = put(store, thought("Alice may go sailing", on_fact))
    (newer,) = store.insert([new("I moved to Rome", day=3)], EMBED.embed(["I moved to Rome"]), actor="t", enqueue=True)
    job = store.claim_job(now=AT, lease_until="2999-01-01T00:00:00.000000Z")
    outcome = JobOutcome([], EMBED.embed([]).reshape(0, EMBED.dim),
                         [Retirement(fact.id, newer.created_at, "supersede", superseded_by(newer.id), (newer.id,))])
    store.complete_job(job, outcome, at=AT, actor="t")
    assert store.get(fact.id).valid_to is not None
    assert last(store, on_fact.id) == ("retire", f"its source {fact.id} was superseded")
    assert last(store, on_thought.id) == ("retire", f"its source {on_fact.id} was retired")
    assert store.get(on_thought.id).valid_to is not None
    assert store.delete(newer.id, at=AT, actor="t")  # the cause is erased: all three hold again
    assert store.get(fact.id).valid_to is None
    assert [store.get(t.id).valid_to for t in (on_fact, on_thought)] == [None, None]
    assert last(store, on_thought.id) == ("reinstate", "its sources are current again")
    assert links(store, on_fact.id) == [fact.id]


def test_gather_job_queues_one_job_per_every_records_of_a_scope(store):
    turns = put(store, *[new(f"turn {i}") for i in range(12)], new("bob's", "bob"))
    scope = Scope("alice")
    assert [store.gather_job(scope, [t.id], kind=REFLECT, at=AT, every=5) for t in turns[:4]] == [False] * 4
    assert store.gather_job(Scope("alice", "agent"), [turns[4].id], kind=REFLECT, at=AT, every=5) is False
    assert store.gather_job(Scope("bob"), [turns[-1].id], kind=REFLECT, at=AT, every=5) is False
    assert store.claim_job(now=AT, lease_until=AT) is None  # gathering: never claimed
    assert store.job_stats("alice")["pending"] == 0
    assert store.gather_job(scope, [turns[4].id, turns[5].id], kind=REFLECT, at=AT, every=5) is True
    job = store.claim_job(now=AT, lease_until="2999-01-01T00:00:00.000000Z")
    assert (job.kind, job.scope, job.record_ids) == (REFLECT, scope, [t.id for t in turns[:6]])
    assert store.gather_job(scope, [turns[6].id], kind=REFLECT, at=AT, every=5) is False  # a new one gathers
    store.delete(turns[6].id, at=AT, actor="t")  # an erased turn leaves the gathering job
    gathering = [j for j in store.export_derived("alice")["jobs"] if j["state"] == "gathering"]
    assert [j["record_ids"] for j in gathering] == [[turns[4].id]]  # alice/agent's; alice's own is dropped
    assert store.gather_job(scope, [], kind=REFLECT, at=AT, every=5) is False
