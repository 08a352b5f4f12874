"""The derivation rule's decisions, without a database (lifecycle/policy.py), and
reconciliation's new cases: distilling the same turns again, a candidate older than the
slot's current value, an outdated memory said again."""

from __future__ import annotations

from engramdb.extract.base import Candidate
from engramdb.lifecycle.policy import Derived, Link, Rederive, Retired, cascade, to_reinstate
from engramdb.reconcile import Stored, plan
from engramdb.types import Record, Scope

S1 = Scope("ann", None, "s1")


def test_a_memory_kept_only_when_a_live_source_alone_says_it():
    said_again = Derived("m1", "fact", S1, (Link("m1", "t1", True), Link("m1", "t2", True)))
    two_halves = Derived("m2", "fact", S1, (Link("m2", "t1"), Link("m2", "t3")))
    only_one = Derived("m3", "fact", S1, (Link("m3", "t1", True),))
    decided = cascade([said_again, two_halves, only_one], {"t1"})
    assert decided.keep == ["m1"]
    assert decided.erase == ["m2", "m3"]
    assert decided.rederive == [Rederive(S1, ("t3",), False)]


def test_a_summary_is_rederived_from_its_session():
    summary = Derived("s", "summary", S1, (Link("s", "t1"), Link("s", "t2")))
    no_session = Derived("x", "summary", Scope("ann"), (Link("x", "t1"),))
    decided = cascade([summary, no_session], {"t1"})
    assert decided.erase == ["s", "x"]
    assert decided.rederive == [Rederive(S1, ("t2",), True)]


def stored(id: str, value: str, at: str) -> Stored:
    return Stored(id, "fact", "user", "residence", value, None, 1, f"The user lives in {value}", at)


def test_reinstated_only_when_no_cause_holds_and_nothing_newer_says_otherwise():
    oslo = Retired("oslo", frozenset({"berlin"}), "user|residence", stored("oslo", "Oslo", "2024-01"), "2024-01")
    rex = Retired("rex", frozenset({"t1", "t2"}), None, None, "2024-01")
    assert to_reinstate([oslo], {"berlin"}, set(), {}) == ["oslo"]
    assert to_reinstate([rex], {"t1"}, {"t2"}, {}) == []  # the other turn still retracts it
    assert to_reinstate([rex], {"t1", "t2"}, set(), {}) == ["rex"]
    newer = {"user|residence": [("rome", stored("rome", "Rome", "2024-05"), "2024-05")]}
    assert to_reinstate([oslo], {"berlin"}, set(), newer) == []  # Rome, said later, holds the slot
    older = {"user|residence": [("lima", stored("lima", "Lima", "2023-01"), "2023-01")]}
    assert to_reinstate([oslo], {"berlin"}, set(), older) == ["oslo"]
    assert to_reinstate([oslo], {"unrelated"}, set(), {}) == []  # not this erasure's business


def record(id: str, text: str, *, value: str | None = None, at: str = "2024-01-01T00:00:00.000000Z",
           valid_to: str | None = None) -> Record:
    meta = {"subject": "user", "attribute": "residence", "value": value} if value else {}
    return Record(id=id, user_id="ann", agent_id=None, session_id="s1", kind="fact", text=text, role=None, name=None,
                  sources=["t1"], metadata=meta, created_at=at, valid_to=valid_to, recorded_at=at, updated_at=at,
                  seq=1)


def lives(value: str, turn: str, said: str) -> Candidate:
    return Candidate(kind="fact", text=f"The user lives in {value}", subject="user", attribute="residence",
                     value=value, sources=(turn,), said_at=said)


def decide(candidates, stored=(), linked=None):
    return plan(candidates, list(stored), {}, scope=S1, recorded_at="2025-01-01T00:00:00.000000Z",
                turn_sources={}, extractor="test", text_key=lambda t: t.lower(), linked=linked)


def test_an_older_candidate_does_not_supersede_a_newer_value():
    rome = record("rome", "The user lives in Rome", value="Rome", at="2024-05-01T00:00:00.000000Z")
    decided = decide([lives("Paris", "t0", "2024-01-01T00:00:00.000000Z")], [rome])
    (paris,) = decided.inserts
    assert decided.retirements[0].id == paris.id and decided.retirements[0].reason == "superseded by rome"
    assert decided.retirements[0].valid_to == rome.created_at  # true until Rome
    assert all(r.id != "rome" for r in decided.retirements)
    assert (paris.id, "t0") in decided.sufficient


def test_distilling_the_same_turns_again_changes_nothing():
    paris = record("paris", "The user lives in Paris", value="Paris")
    decided = decide([lives("Paris", "t1", "2024-01-01T00:00:00.000000Z")], [paris],
                     linked={"the user lives in paris": (paris, "add")})
    assert decided.inserts == [] and decided.retirements == [] and decided.revivals == []
    assert decided.decisions == [("NOOP", "The user lives in Paris")]


def test_an_outdated_memory_said_again_is_revived_not_copied():
    paris = record("paris", "The user lives in Paris", value="Paris", valid_to="2025-01-01T00:00:00.000000Z")
    decided = decide([lives("Paris", "t1", "2024-01-01T00:00:00.000000Z")], [],
                     linked={"the user lives in paris": (paris, "outdate")})
    assert decided.inserts == [] and decided.revivals == ["paris"]
    assert ("paris", "t1") in decided.sufficient
