"""Vitals and lifecycle states (issue 12, parts 3-5): strength and retention
(MemoryBank), utility from feedback (MemRL), decay that archives and never deletes,
revival by exact recall or confirmation, every state change in history, and the
derivation rule (an erased memory's vitals go with it) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from engramdb import Config, Memory
from engramdb.errors import ConfigError, InvalidInputError, NotFoundError
from engramdb.living.vitals import (ACTIVE, ARCHIVED, Candidate, Vitals, reranked, retention, state_after, to_archive,
                                    untouched_since, utility_after)
from engramdb.providers.fake import FakeEmbedder

TAU_DAYS = 30.0
DECAY = Config(extractor="fake", decay=True, decay_tau_days=TAU_DAYS, decay_threshold=0.05, decay_interval_s=3600)
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


class ManualClock:
    def __init__(self) -> None:
        self.at = START

    def now(self) -> datetime:
        return self.at

    def advance(self, days: float) -> None:
        self.at += timedelta(days=days)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "engram.db")
    return request.getfixturevalue("pg_url")


def vitals_rows(url: str) -> list[str]:
    """Every memory id the vitals table holds, read from the database itself."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url) as conn:
            return [row[0] for row in conn.execute("SELECT memory_id FROM engram.vitals ORDER BY 1")]
    with sqlite3.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT memory_id FROM vitals ORDER BY 1")]


def fact(mem: Memory, words: str, **kw):
    (found,) = [r for r in mem.list(user_id="ann", filters={"kind": "fact"}, limit=100, **kw) if words in r.text]
    return found


# -- pure decisions -----------------------------------------------------------------------

def test_retention_is_memorybanks_forgetting_curve():
    tau = TAU_DAYS * 86_400
    assert retention(1.0, 0, tau) == 1.0
    assert retention(1.0, tau, tau) == pytest.approx(math.exp(-1))
    assert retention(2.0, tau, tau) == pytest.approx(math.exp(-0.5))  # recalled once more: fades half as fast
    assert retention(1.0, -5, tau) == 1.0  # a clock that went back does not make it stronger than new
    with pytest.raises(ValueError):
        retention(0.0, 1, tau)


def test_utility_moves_towards_use_and_stays_within_bounds():
    u = 0.0
    for _ in range(50):
        u = utility_after(u, True)
    assert 0.99 < u <= 1.0
    assert utility_after(0.0, False) == pytest.approx(-0.2)
    assert utility_after(1.0, False) == pytest.approx(0.6)


def test_state_follows_the_history_events():
    assert state_after([]) == ACTIVE
    assert state_after(["add", "supersede"]) == "superseded"
    assert state_after(["add", "retract", "reinstate", "archive"]) == ARCHIVED
    assert state_after(["add", "archive", "revive", "outdate"]) == "superseded"
    assert state_after(["add", "delete"]) == "erased"
    assert state_after(["add", "merge"]) == "merged"


def test_only_active_derived_memories_below_the_threshold_are_archived():
    now = START + timedelta(days=100)
    old = START.isoformat()
    recent = (START + timedelta(days=90)).isoformat()
    candidates = [
        Candidate("m-trivia", "fact", ACTIVE, old, 1.0, None),
        Candidate("m-turn", "turn", ACTIVE, old, 1.0, None),  # turns never fade
        Candidate("m-archived", "fact", ARCHIVED, old, 1.0, None),
        Candidate("m-strong", "fact", ACTIVE, old, 50.0, None),  # exp(-100 / 1500) = 0.94
        Candidate("m-recalled", "fact", ACTIVE, old, 1.0, recent),  # exp(-10 / 30) = 0.72
    ]
    out = to_archive(candidates, now, tau_s=TAU_DAYS * 86_400, threshold=0.05)
    assert [m for m, _ in out] == ["m-trivia"]
    assert out[0][1] == "retention 0.036 below 0.05 (strength 1, not recalled for 100 days)"
    # the sweep reads only memories untouched for at least -ln(threshold) * tau
    assert untouched_since(now, TAU_DAYS * 86_400, 0.05) == now - timedelta(days=-math.log(0.05) * TAU_DAYS)


def test_reranking_by_use_only_moves_what_its_weights_say():
    scored = [("a", 1.0), ("b", 0.9)]
    vitals = {"b": Vitals("b", utility=1.0)}
    at = {"a": START.isoformat(), "b": START.isoformat()}
    kept = reranked(scored, vitals, now=START, recorded_at=at, tau_s=86_400, utility_weight=None,
                    retention_weight=None)
    assert kept == scored
    moved = reranked(scored, vitals, now=START, recorded_at=at, tau_s=86_400, utility_weight=0.5,
                     retention_weight=None)
    assert [k for k, _ in moved] == ["b", "a"] and moved[0][1] == pytest.approx(1.35)


def test_config_checks_the_decay_settings():
    with pytest.raises(ConfigError):
        Config(decay_threshold=1.5)
    with pytest.raises(ConfigError):
        Config(decay_tau_days=0)
    with pytest.raises(ConfigError):
        Config(utility_weight=2.0)
    assert Config().decay is False and Config().vitals is True and Config().utility_weight is None


# -- the scenario -------------------------------------------------------------------------

def test_trivia_fades_while_recalled_facts_stay_and_come_back_when_recalled(url, tmp_path):
    clock = ManualClock()
    with Memory(url, embedder=FakeEmbedder(), clock=clock, config=DECAY) as mem:
        mem.add([{"role": "user", "content": "I had toast for breakfast"},
                 {"role": "user", "content": "I work at Airbus"},
                 {"role": "user", "content": "I like jazz"}], user_id="ann", session_id="s1")
        assert mem.flush(60)
        toast, work, jazz = fact(mem, "toast"), fact(mem, "Airbus"), fact(mem, "jazz")

        clock.advance(60)  # two months on, the user asks about work
        (hit,) = mem.search("Airbus", user_id="ann", limit=1, filters={"kind": "fact"})
        assert hit.id == work.id
        assert mem.flush(60)
        assert mem.vitals(work.id).strength == 2.0 and mem.vitals(work.id).recalls == 1
        assert mem.get(toast.id).state == ACTIVE  # exp(-60 / 30) = 0.14: not faded yet

        clock.advance(40)  # day 100: the unrecalled trivia is below 0.05, the recalled fact at 0.51
        assert mem.flush(60)
        listed = {r.id: r.state for r in mem.list(user_id="ann", limit=100)}
        assert work.id in listed and toast.id not in listed and jazz.id not in listed
        everything = {r.id: r.state for r in mem.list(user_id="ann", limit=100, include_archived=True)}
        assert (everything[toast.id], everything[jazz.id], everything[work.id]) == (ARCHIVED, ARCHIVED, ACTIVE)
        assert all(state == ACTIVE for rid, state in everything.items() if rid not in (toast.id, jazz.id))  # turns
        last = mem.history(jazz.id)[-1]
        assert last.event == "archive" and last.reason.startswith("retention 0.036 below 0.05")
        assert last.text == jazz.text  # nothing deleted: the text is all there
        facts = {"kind": "fact"}  # (beside its own turn, a fact that only echoes it is left out of search)
        assert jazz.id not in [h.id for h in mem.search("jazz", user_id="ann", filters=facts)]
        assert jazz.id in [h.id for h in mem.search("jazz", user_id="ann", filters=facts, include_archived=True)]
        assert mem.list(user_id="ann", filters={"state": "archived"}, limit=10)[0].state == ARCHIVED
        cube = tmp_path / "ann.cube.jsonl"
        mem.export(cube, user_id="ann")
        lines = [json.loads(line) for line in cube.read_text().splitlines()[1:]]
        assert {line["record"]["id"]: line["record"]["state"] for line in lines
                if line["type"] == "record"}[jazz.id] == ARCHIVED  # (a "notes" line may follow the records)

        revived = mem.get(toast.id)  # fetched by its id: recalled exactly
        assert revived.state == ACTIVE
        assert [(v.event, v.reason) for v in mem.history(toast.id)][-2:] == [
            ("archive", mem.history(toast.id)[-2].reason), ("revive", "recalled by id")]

        mem.search(jazz.text, user_id="ann")  # the very text asked for
        assert mem.flush(60)
        assert mem.get(jazz.id).state == ACTIVE
        assert mem.history(jazz.id)[-1].reason == "recalled by an exact match"

        clock.advance(500)  # much later everything derived has faded again, recalled or not
        assert mem.flush(60)
        states = {r.id: r.state for r in mem.list(user_id="ann", limit=100, include_archived=True)}
        assert states[toast.id] == states[jazz.id] == states[work.id] == ARCHIVED
        mem.add("I like jazz", user_id="ann", session_id="s2")  # the same fact said again
        assert mem.flush(60)
        assert mem.list(user_id="ann", filters={"id": jazz.id}, limit=1)[0].state == ACTIVE
        assert mem.history(jazz.id)[-1].event == "revive"
        assert mem.history(jazz.id)[-1].reason.startswith("confirmed again by mem_")
        assert mem.vitals(jazz.id).confirmations == 1
        assert [r.kind for r in mem.list(user_id="ann", limit=100, include_archived=True)].count("fact") == 3


def test_feedback_moves_utility_and_is_checked(url):
    with Memory(url, embedder=FakeEmbedder(), config=Config(extractor="none")) as mem:
        a, b = mem.add(["first memory", "second memory"], user_id="ann").ids
        (bob,) = mem.add("bob's memory", user_id="bob").ids
        mem.feedback("which memory?", used=[a], unused=[b], user_id="ann")
        mem.feedback("which memory?", used=[a])
        assert mem.vitals(a).utility == pytest.approx(0.36) and mem.vitals(a).used == 2
        assert mem.vitals(a).strength == 3.0  # a used memory was recalled
        assert (mem.vitals(b).utility, mem.vitals(b).unused, mem.vitals(b).strength) == (pytest.approx(-0.2), 1, 1.0)
        with pytest.raises(NotFoundError):
            mem.feedback("q", used=[bob], user_id="ann")  # another user's memory is not found
        with pytest.raises(NotFoundError):
            mem.feedback("q", unused=["mem_nope"])
        with pytest.raises(InvalidInputError):
            mem.feedback("q", used=[a], unused=[a])
        with pytest.raises(InvalidInputError):
            mem.feedback("q", used=a)
        with pytest.raises(InvalidInputError):
            mem.feedback("", used=[a])
        assert mem.vitals(bob).utility == 0.0 and mem.vitals(a).used == 2  # refused calls wrote nothing
        with pytest.raises(InvalidInputError, match="include_archived"):
            mem.list(user_id="ann", include_archived="yes")
        with pytest.raises(InvalidInputError, match="include_archived"):
            mem.search("memory", user_id="ann", include_archived=1)


def test_switched_off_vitals_record_no_recalls(tmp_path):
    with Memory(tmp_path / "off.db", embedder=FakeEmbedder(), config=Config(extractor="none", vitals=False)) as mem:
        (a,) = mem.add("a memory", user_id="ann").ids
        mem.search("memory", user_id="ann")
        mem.context("memory", user_id="ann")
        assert mem.flush(10)
        assert mem.vitals(a) == Vitals(a)


def test_recall_and_context_count_as_recalls(tmp_path):
    with Memory(tmp_path / "on.db", embedder=FakeEmbedder(), config=Config(extractor="none")) as mem:
        (a,) = mem.add("a memory about sailing", user_id="ann").ids
        mem.context("sailing", user_id="ann")
        mem.recall("sailing", user_id="ann")
        assert mem.flush(10)
        assert mem.vitals(a).recalls == 2


def test_a_read_only_memory_never_writes_vitals_or_revives(tmp_path):
    path = tmp_path / "ro.db"
    with Memory(path, embedder=FakeEmbedder(), config=Config(extractor="none")) as mem:
        (a,) = mem.add("a memory", user_id="ann").ids
        mem.store.set_state([(a, "test")], ARCHIVED, at="2025-01-01T00:00:00.000000Z", actor=None)
    with Memory(path, embedder=FakeEmbedder(), read_only=True) as ro:
        assert ro.get(a).state == ARCHIVED
        ro.search("memory", user_id="ann", include_archived=True)
        assert ro.flush(10)
        assert ro.vitals(a) == Vitals(a)


# -- the derivation rule --------------------------------------------------------------------

def test_vitals_of_erased_memories_are_erased_with_them(url):
    with Memory(url, embedder=FakeEmbedder(), config=Config(extractor="fake")) as mem:
        turns = mem.add([{"role": "user", "content": "I keep three hives of bees"},
                         {"role": "user", "content": "I fly a glider on Sundays"}], user_id="ann", session_id="s1")
        mem.add("I collect stamps", user_id="ann", session_id="s2")
        assert mem.flush(60)
        everything = mem.list(user_id="ann", limit=100)
        for record in everything:
            mem.search(record.text, user_id="ann")
        mem.feedback("q", used=[r.id for r in everything])
        assert mem.flush(60)
        assert sorted(vitals_rows(url)) == sorted(r.id for r in everything)
        bees = fact(mem, "bees")
        mem.delete(turns.ids[0], user_id="ann")  # the turn, and the fact derived from it
        left = {r.id for r in mem.list(user_id="ann", limit=100, include_archived=True, include_retired=True)}
        assert bees.id not in left and turns.ids[0] not in left
        assert set(vitals_rows(url)) == left
        mem.forget(user_id="ann", session_id="s2")
        left = {r.id for r in mem.list(user_id="ann", limit=100, include_archived=True, include_retired=True)}
        assert set(vitals_rows(url)) == left and len(left) == 2
        mem.forget(user_id="ann")
        assert vitals_rows(url) == []


# -- cubes and migrations ---------------------------------------------------------------------

def test_a_cube_written_before_vitals_still_imports(tmp_path):
    with Memory(tmp_path / "a.db", embedder=FakeEmbedder(), config=Config(extractor="none")) as mem:
        (a,) = mem.add("an old memory", user_id="ann").ids
        mem.search("old memory", user_id="ann")
        assert mem.flush(10)
        mem.export(tmp_path / "new.jsonl", user_id="ann")
    lines = (tmp_path / "new.jsonl").read_text().splitlines()
    header, record = lines[0], json.loads(lines[1])
    assert record["vitals"]["recalls"] == 1
    old = dict(record, record={k: v for k, v in record["record"].items() if k != "state"})
    del old["vitals"]
    (tmp_path / "old.jsonl").write_text(header + "\n" + json.dumps(old) + "\n")
    bad = dict(record, vitals=dict(record["vitals"], strength=0.5))
    (tmp_path / "bad.jsonl").write_text(header + "\n" + json.dumps(bad) + "\n")
    with Memory(tmp_path / "b.db", embedder=FakeEmbedder(), config=Config(extractor="none")) as other:
        assert other.import_(tmp_path / "old.jsonl") == 1
        assert other.get(a).state == ACTIVE and other.vitals(a) == Vitals(a)
        assert other.import_(tmp_path / "new.jsonl", user_id="bea") == 1  # new ids: the vitals follow them
        (moved,) = other.list(user_id="bea")
        assert other.vitals(moved.id).recalls == 1 and other.vitals(a).recalls == 0
        with pytest.raises(InvalidInputError, match="strength"):
            other.import_(tmp_path / "bad.jsonl")


def test_migration_0007_states_what_retired_memories_are(tmp_path):
    from engramdb.stores.migrations import migrate, sqlite_target
    from engramdb.stores.sqlite import SQLiteStore, user_key
    from engramdb.stores.sqlite_schema import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.create_function("engram_user_key", 1, user_key, deterministic=True)
    conn.execute("BEGIN IMMEDIATE")
    assert MIGRATIONS[6][0] == "0007_vitals"
    migrate(sqlite_target(conn), MIGRATIONS[:6], owner=str(path))
    at = "2024-01-01T00:00:00.000000Z"
    for rid, expired, events in (("m_live", None, ["add"]), ("m_sup", at, ["add", "supersede"]),
                                 ("m_ret", at, ["add", "retract"]), ("m_out", at, ["add", "outdate"])):
        conn.execute("INSERT INTO records (id, user_id, kind, text, created_at, recorded_at, updated_at, "
                     "content_hash, expired_at, valid_to) VALUES (?, 'ann', 'fact', 'x', ?, ?, ?, 'h', ?, ?)",
                     (rid, at, at, at, expired, expired))
        for number, event in enumerate(events, start=1):
            conn.execute("INSERT INTO versions (memory_id, version, user_id, event, content_hash, at) "
                         "VALUES (?, ?, 'ann', ?, 'h', ?)", (rid, number, event, at))
    conn.execute("COMMIT")
    conn.close()
    store = SQLiteStore(path)
    try:
        assert [store.get(i).state for i in ("m_live", "m_sup", "m_ret", "m_out")] == [
            ACTIVE, "superseded", "retracted", "superseded"]
        assert "0007_vitals" in store.applied_migrations()
    finally:
        store.close()
