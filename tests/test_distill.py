"""Distillation through Memory: turns become facts, preferences, events and summaries in
the background; new facts supersede old ones by slot; search answers now or as of a
date; history keeps the chain; erasure follows the sources; the queue is durable."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

import engramdb.memory
from engramdb import Config, Memory
from engramdb.errors import NotFoundError, ProviderError
from engramdb.extract.base import ExtractionResult
from engramdb.providers.fake import FakeEmbedder

OFFLINE = Config(extractor="offline")
GATED = Config(extractor="fake")  # the tests below swap the registry's answer for a Gate

LIFE = [
    ("2023-01-05T10:00:00Z", "I live in Paris."),
    ("2023-01-06T10:00:00Z", "I work at Google as a software engineer."),
    ("2023-01-07T10:00:00Z", "I adopted a dog named Rex."),
    ("2023-01-08T10:00:00Z", "My girlfriend Sarah and I went hiking."),
    ("2023-01-09T10:00:00Z", "I love sushi."),
    ("2023-02-01T10:00:00Z", "We got a cat named Luna."),
    ("2023-03-01T10:00:00Z", "I started a new job at Stripe."),
    ("2023-04-10T10:00:00Z", "My dog Rex died last Tuesday."),
    ("2023-05-01T10:00:00Z", "Sarah and I broke up."),
    ("2023-06-05T10:00:00Z", "I moved to Berlin last month."),
    ("2023-07-01T10:00:00Z", "I don't like sushi anymore."),
]


def facts(mem: Memory, **kwargs) -> dict[str, set[str]]:
    """The derived memories with an attribute, as {attribute: {value, ...}}."""
    out: dict[str, set[str]] = {}
    for record in mem.list(user_id="alice", limit=500, filters={"kind": {"ne": "turn"}}, **kwargs):
        if record.metadata.get("attribute"):
            out.setdefault(record.metadata["attribute"], set()).add(record.metadata.get("value"))
    return out


@pytest.fixture
def life(db_path):
    with Memory(db_path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        for at, text in LIFE:
            mem.add([{"role": "user", "content": text, "timestamp": at}], user_id="alice")
        assert mem.flush(120)
        yield mem


def test_a_life_of_changes_current_answers(life):
    now = facts(life)
    assert now["residence"] == {"Berlin"}
    assert now["employer"] == {"Stripe"}
    assert now["pet"] == {"Luna"}  # the dog died; a new pet never retired the old one
    assert now["relationship_status"] == {"single"}
    assert "partner" not in now and "likes" not in now
    jobs = life.jobs()
    jobs.pop("distilled")  # counted just after each job's last write (tests/test_backlog.py)
    ran = {r["capability"] for r in jobs.pop("runs")}  # what ran (tests/test_scheduler.py)
    assert "distill" in ran and ran <= {"distill", "notes"}
    assert jobs == {"pending": 0, "running": 0, "failed": 0, "ready": 0, "oldest": None, "recent_errors": [],
                    "backlog_age_s": None}


def test_as_of_answers_what_was_true_then(life):
    assert facts(life, as_of="2023-02-15")["residence"] == {"Paris"}
    assert facts(life, as_of="2023-02-15")["pet"] == {"Rex", "Luna"}
    assert facts(life, as_of="2023-02-15")["employer"] == {"Google"}
    assert facts(life, as_of="2023-04-05")["pet"] == {"Luna"}  # Rex died "last Tuesday", 2023-04-04
    assert facts(life, as_of="2023-04-05")["partner"] == {"Sarah"}
    assert facts(life, as_of="2022-12-31") == {}
    # search takes as_of too, and by default returns current memories only
    then = [h.text for h in life.search("where does the user live", user_id="alice", as_of="2023-02-15")]
    assert "The user lives in Paris" in then and "The user lives in Berlin" not in then
    now = [h.text for h in life.search("where does the user live", user_id="alice")]
    assert "The user lives in Berlin" in now and "The user lives in Paris" not in now


def test_history_keeps_the_chain_with_reasons(life):
    retired = life.list(user_id="alice", filters={"valid_to": {"ne": None}, "metadata.attribute": "residence"})
    assert [r.text for r in retired] == ["The user lives in Paris"]
    paris = retired[0]
    assert paris.valid_to.startswith("2023-05-01") and paris.expired_at is not None  # bitemporal
    assert paris.created_at.startswith("2023-01-05") and paris.recorded_at <= paris.expired_at
    chain = life.history(paris.id)
    assert [v.event for v in chain] == ["add", "supersede"]
    berlin = next(r for r in life.list(user_id="alice", filters={"metadata.attribute": "residence"}))
    assert chain[-1].reason == f"superseded by {berlin.id}"
    assert chain[-1].text == "The user lives in Paris"  # superseded, not deleted
    assert life.history(berlin.id)[0].reason == f"supersedes {paris.id}"
    assert berlin.metadata["reason"] == f"supersedes {paris.id}"
    rex = life.list(user_id="alice", filters={"valid_to": {"ne": None}, "metadata.value": "Rex"})[0]
    assert life.history(rex.id)[-1].event == "retract"


def test_derived_memories_cite_their_source_turns(life):
    turns = {r.text: r for r in life.list(user_id="alice", filters={"kind": "turn"}, limit=100)}
    stripe = life.list(user_id="alice", filters={"metadata.value": "Stripe"})[0]
    assert stripe.kind == "fact" and stripe.sources == turns["I started a new job at Stripe."].sources
    hit = next(h for h in life.search("where does the user work", user_id="alice") if h.id == stripe.id)
    assert hit.sources == stripe.sources


def test_a_repeated_fact_is_one_memory_with_both_sources_and_erasure_follows_them(db_path):
    with Memory(db_path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        first = mem.add([{"content": "I live in Lisbon.", "timestamp": "2023-01-01T00:00:00Z"}], user_id="alice")
        second = mem.add([{"content": "I live in Lisbon.", "timestamp": "2023-02-01T00:00:00Z"}], user_id="alice")
        assert mem.flush(60)
        lisbon = mem.list(user_id="alice", filters={"metadata.attribute": "residence"})
        assert len(lisbon) == 1  # NOOP: the same fact again confirms it
        assert set(lisbon[0].sources) == {first.ids[0], second.ids[0]}
        mem.delete(first.ids[0])  # one source erased: the memory keeps the other
        kept = mem.get(lisbon[0].id)
        assert kept.sources == [second.ids[0]]
        mem.delete(second.ids[0])  # the last source erased: the memory goes too
        with pytest.raises(NotFoundError):
            mem.get(lisbon[0].id)
        assert [v.event for v in mem.history(lisbon[0].id)][-1] == "delete"
        assert all(v.text is None for v in mem.history(lisbon[0].id))


def test_erasure_leaves_no_text_anywhere_not_even_in_the_file(db_path, tmp_path):
    secret = "I moved to Zanzibarville last week."
    with Memory(db_path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        mem.add([{"content": "I live in Oslo.", "timestamp": "2023-01-01T00:00:00Z"}], user_id="alice")
        added = mem.add([{"content": secret, "timestamp": "2023-03-01T00:00:00Z"}], user_id="alice")
        assert mem.flush(60)
        derived = [r for r in mem.list(user_id="alice", limit=100, include_retired=True)
                   if "Zanzibarville" in r.text and r.kind != "turn"]
        assert derived, "the move was distilled into memories"
        oslo = mem.list(user_id="alice", filters={"valid_to": {"ne": None}})
        assert [r.text for r in oslo] == ["The user lives in Oslo"]  # superseded by the secret move
        mem.delete(added.ids[0])
        for record in derived:
            with pytest.raises(NotFoundError):
                mem.get(record.id)
        assert not [h for h in mem.search("Zanzibarville", user_id="alice", include_retired=True)
                    if "Zanzibarville" in h.text]
        # The fact the erased move superseded is true again: the erased turn left no trace.
        assert [r.text for r in mem.list(user_id="alice", filters={"metadata.attribute": "residence"})] == [
            "The user lives in Oslo"]
        assert [v.event for v in mem.history(oslo[0].id)] == ["add", "supersede", "reinstate"]
        assert not [r for r in mem.list(user_id="alice", limit=100, include_retired=True)
                    if "Zanzibarville" in r.text]
        for record in [*derived, mem.get(oslo[0].id)]:
            assert not any("Zanzibarville" in (v.text or "") or "Zanzibarville" in (v.reason or "")
                           for v in mem.history(record.id))
        cube = tmp_path / "alice.cube.jsonl"
        mem.export(cube, user_id="alice")
        assert "Zanzibarville" not in cube.read_text()
        mem.compact()
    for path in db_path.parent.iterdir():
        if path.is_file():
            assert b"Zanzibarville" not in path.read_bytes(), path.name
            assert b"zanzibarvill" not in path.read_bytes().lower(), path.name  # FTS terms, stemmed


def test_forget_erases_derived_memories_and_queued_jobs(db_path):
    with Memory(db_path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        mem.add([{"content": "I live in Rome.", "timestamp": "2023-01-01T00:00:00Z"}], user_id="alice")
        mem.add([{"content": "I live in Madrid.", "timestamp": "2023-01-01T00:00:00Z"}], user_id="bob")
        assert mem.flush(60)
        assert mem.forget(user_id="alice") >= 2
        assert mem.list(user_id="alice", include_retired=True) == []
        assert facts(mem) == {}
        assert [r.metadata.get("value") for r in mem.list(user_id="bob", filters={"kind": "fact"})] == ["Madrid"]
        assert mem.jobs(user_id="alice")["pending"] == 0


class Gate:
    """An extractor that fails while `down` is set (a dead LLM), else blocks until
    `release` is set, then distils one fact per turn."""

    name = "gate"

    def __init__(self) -> None:
        self.down = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def extract(self, turns):
        from engramdb.extract.base import Candidate

        self.calls += 1
        if self.down.is_set():
            raise ProviderError("chat server unreachable: connection refused")
        assert self.release.wait(30)
        return ExtractionResult(candidates=[
            Candidate(kind="fact", text=f"The user said: {t.text}", subject="user", sources=(t.id,),
                      said_at=t.timestamp) for t in turns])


class ManualClock:
    def __init__(self) -> None:
        self.at = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.at


def gated(monkeypatch, gate: Gate) -> None:
    monkeypatch.setattr(engramdb.memory, "make_extractor", lambda *args, **kwargs: gate)


def test_add_returns_at_once_and_the_turn_is_searchable_before_distillation(db_path, monkeypatch):
    gate = Gate()
    gated(monkeypatch, gate)
    with Memory(db_path, embedder=FakeEmbedder(), config=GATED) as mem:
        added = mem.add("the blue notebook is in the attic", user_id="alice")
        assert [h.id for h in mem.search("blue notebook attic", user_id="alice")] == added.ids
        assert mem.flush(0.2) is False  # the worker is held at the gate
        assert mem.jobs()["pending"] + mem.jobs()["running"] == 1
        gate.release.set()
        assert mem.flush(30)
        assert [r.text for r in mem.list(user_id="alice", filters={"kind": "fact"})] == [
            "The user said: the blue notebook is in the attic"]
        assert mem.get(added.ids[0]).id == added.ids[0]  # ids never change


def test_a_dead_llm_loses_nothing_and_jobs_resume_after_restart(db_path, monkeypatch):
    gate, clock = Gate(), ManualClock()
    gate.down.set()
    gate.release.set()
    gated(monkeypatch, gate)
    with Memory(db_path, embedder=FakeEmbedder(), config=GATED, clock=clock) as mem:
        added = mem.add("my locker code is 2231", user_id="alice")
        assert mem.flush(10)  # the failed job waits out its backoff: nothing is ready
        jobs = mem.jobs()
        assert jobs["pending"] == 1 and "connection refused" in jobs["recent_errors"][0]["error"]
        assert mem.get(added.ids[0]).text == "my locker code is 2231"  # the turn is safe
    gate.down.clear()
    clock.at += timedelta(minutes=1)  # past the backoff
    with Memory(db_path, embedder=FakeEmbedder(), config=GATED, clock=clock) as mem:
        assert mem.flush(30)  # the job resumed on open
        assert mem.jobs()["pending"] == 0
        assert [r.text for r in mem.list(user_id="alice", filters={"kind": "fact"})] == [
            "The user said: my locker code is 2231"]


def test_a_job_that_keeps_failing_is_parked_as_failed(db_path, monkeypatch):
    from engramdb import distill

    gate, clock = Gate(), ManualClock()
    gate.down.set()
    gated(monkeypatch, gate)
    with Memory(db_path, embedder=FakeEmbedder(), config=GATED, clock=clock) as mem:
        mem.add("a turn the LLM never reads", user_id="alice")
        for _ in range(distill.MAX_ATTEMPTS + 1):
            assert mem.flush(10)
            clock.at += timedelta(hours=1)
        assert mem.jobs()["failed"] == 1 and mem.jobs()["pending"] == 0
        assert gate.calls == distill.MAX_ATTEMPTS


def test_a_job_leased_by_a_dead_worker_is_claimed_again(db_path, monkeypatch):
    from engramdb.stores.base import NewRecord
    from engramdb.types import Scope

    gate, clock = Gate(), ManualClock()
    gate.release.set()
    at = "2024-01-01T00:00:00.000000Z"
    with Memory(db_path, embedder=FakeEmbedder(), config=Config(extractor="none"), clock=clock) as mem:
        text = "the car is parked on level 3"
        turn = NewRecord(id="mem_car", scope=Scope("alice"), kind="turn", text=text, created_at=at, recorded_at=at,
                         role="user", sources=["car-1"])
        mem.store.insert([turn], mem.embedder.embed([text]), actor="alice", enqueue=True)  # as add() would
        job = mem.store.claim_job(now=at, lease_until="2024-01-01T00:05:00.000000Z")
        assert job is not None and job.record_ids == ["mem_car"]  # "a worker" took it, then died unfinished
        assert mem.store.claim_job(now=at, lease_until=at) is None  # leased: nobody else gets it meanwhile
    gated(monkeypatch, gate)
    clock.at += timedelta(minutes=6)  # past the lease
    with Memory(db_path, embedder=FakeEmbedder(), config=GATED, clock=clock) as mem:
        assert mem.flush(30)
        [fact] = mem.list(user_id="alice", filters={"kind": "fact"})
        assert fact.text == "The user said: the car is parked on level 3" and fact.sources == ["car-1"]


@pytest.mark.distill
def test_the_default_distils_offline(db_path):
    with Memory(db_path, embedder=FakeEmbedder()) as mem:
        mem.add([{"content": "I work at Airbus.", "timestamp": "2023-01-01T00:00:00Z"}], user_id="alice")
        assert mem.flush(60)
        assert [r.text for r in mem.list(user_id="alice", filters={"kind": "fact"})] == ["The user works at Airbus"]


def test_the_llm_extractor_through_memory_survives_a_dead_server(db_path):
    """Config(extractor="llm:<model>") against a real OpenAI-compatible server on
    127.0.0.1 whose scripted model reads "I live in X" lines from the prompt; while it
    answers 503 nothing is lost, and once it is back the queued job is distilled."""
    import json
    import re

    from http_stub import chat_completion, json_server

    state = {"down": True, "calls": 0}

    def respond(path: str, body: dict) -> tuple[int, object]:
        state["calls"] += 1
        if state["down"]:
            return 503, {"error": {"message": "loading model"}}
        prompt = body["messages"][-1]["content"]
        items = [{"kind": "fact", "turn_ids": [m.group(1)], "subject": "user", "attribute": "lives in",
                  "value": m.group(2), "operation": "assert", "text": f"The user lives in {m.group(2)}"}
                 for m in re.finditer(r'\[(\S+)\][^\n|]*\| [^:\n]+: "I live in (\w+)', prompt)]
        return 200, chat_completion(json.dumps({"memories": items}))

    clock = ManualClock()
    with json_server(respond) as url, \
            Memory(db_path, embedder=FakeEmbedder(), config=Config(extractor="llm:scripted", llm_base_url=url,
                                                                   llm_timeout_s=5), clock=clock) as mem:
        added = mem.add([{"content": "I live in Quito.", "timestamp": "2023-01-01T00:00:00Z"}], user_id="alice")
        assert mem.flush(10)
        jobs = mem.jobs()
        assert jobs["pending"] == 1 and "503" in jobs["recent_errors"][0]["error"]
        assert mem.get(added.ids[0]).text == "I live in Quito."
        state["down"] = False
        clock.at += timedelta(minutes=1)
        assert mem.flush(30)
        [fact] = mem.list(user_id="alice", filters={"kind": "fact"})
        assert fact.text == "The user lives in Quito" and fact.metadata["attribute"] == "residence"
        assert fact.sources == added.records[0].sources and fact.metadata["extractor"].startswith("llm")
    assert state["calls"] >= 2
