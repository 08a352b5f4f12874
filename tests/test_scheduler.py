"""The scheduler (lifecycle/scheduler.py): pure decisions of when background work is due
(after N turns, when idle, on a timer, for a flush), and `Memory.jobs()["runs"]`: what
ran and why, bounded, with no memory text. Real SQLite, the fake embedder and extractor."""

from __future__ import annotations

import json
import time

import pytest

from engramdb import Config, Memory
from engramdb.errors import ConfigError
from engramdb.lifecycle.scheduler import (
    DISTILL, FLUSH, NOTES, QUEUED, TIMER, TOPICS, RunLog, Run, Schedule, Scheduler, decide, schedules,
)
from engramdb.providers.fake import FakeEmbedder

SECRET = "the spare key is under the blue flowerpot"


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- pure decisions ------------------------------------------------------------------------


def test_decide_names_the_trigger_that_fired():
    after = Schedule(after_turns=10)
    assert decide(after, new_turns=9, idle_s=None, since_run_s=None) is None
    assert decide(after, new_turns=10, idle_s=None, since_run_s=None) == "after 10 turns"
    assert decide(Schedule(after_turns=1), new_turns=1, idle_s=0.0, since_run_s=5.0) == "after 1 turn"
    idle = Schedule(after_turns=100, idle_s=30)
    assert decide(idle, new_turns=3, idle_s=29.9, since_run_s=None) is None
    assert decide(idle, new_turns=3, idle_s=30.0, since_run_s=None) == "idle 30 s"
    assert decide(idle, new_turns=0, idle_s=300.0, since_run_s=None) is None  # nothing new to run for
    timer = Schedule(every_s=10)
    assert decide(timer, new_turns=0, idle_s=None, since_run_s=None) == TIMER  # never ran: at once
    assert decide(timer, new_turns=5, idle_s=None, since_run_s=9.0) is None
    assert decide(timer, new_turns=5, idle_s=None, since_run_s=10.0) == TIMER
    assert decide(Schedule(), new_turns=0, idle_s=None, since_run_s=1.0, flushing=True) == FLUSH


class Ticks:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_scheduler_counts_turns_per_scope_and_starts_again_after_a_run():
    ticks = Ticks()
    s = Scheduler({DISTILL: Schedule(after_turns=3, idle_s=60)}, now=lambda: "2024-01-01T00:00:00.000000Z",
                  monotonic=ticks)
    s.note("alice", 2)
    s.note("bob", 1)
    assert s.due(DISTILL, "alice") is None and s.any_due(DISTILL) is None
    s.note("alice", 1)
    assert s.due(DISTILL, "alice") == "after 3 turns" and s.any_due(DISTILL) == "after 3 turns"
    s.ran(DISTILL, "alice")
    assert s.pending(DISTILL, "alice") == 0 and s.due(DISTILL, "alice") is None
    ticks.t += 60
    assert s.due(DISTILL, "bob") == "idle 60 s"  # no add() for a minute: bob's one turn goes
    assert s.due(DISTILL, "alice") is None  # nothing new for alice
    assert s.any_due(DISTILL, flushing=True) == FLUSH


def test_a_timer_only_capability_is_not_counted_by_turns():
    s = Scheduler({"decay": Schedule(every_s=3600)}, now=lambda: "t")
    s.note("alice", 5)
    assert s.pending("decay", "alice") == 0


def test_the_run_log_is_bounded_and_logs_errors_by_type_only():
    s = Scheduler({}, now=lambda: "2024-01-01T00:00:00.000000Z", log_size=3)
    for n in range(5):
        with s.running(DISTILL, "alice", "after 1 turn") as progress:
            progress.items = n
    with pytest.raises(ValueError):
        with s.running(TOPICS, "bob", TIMER):
            raise ValueError(SECRET)
    runs = s.log.recent()
    assert [r["items"] for r in runs] == [3, 4, 0]
    assert runs[-1]["error"] == "ValueError" and SECRET not in json.dumps(runs)
    assert [r["capability"] for r in s.log.recent("alice")] == [DISTILL, DISTILL]
    assert set(runs[0]) == {"capability", "user_id", "trigger", "started_at", "finished_at", "seconds", "items",
                            "error"}
    log = RunLog(1)
    log.append(Run(DISTILL, None, FLUSH, "a"))
    assert len(log) == 1


def test_only_capabilities_switched_on_are_scheduled():
    assert set(schedules(Config())) == {DISTILL, "reflect"}
    on = schedules(Config(topics=True, decay=True, topics_every_s=None, topics_after_turns=20, reflection=False))
    assert set(on) == {DISTILL, TOPICS, "decay"}
    assert on[TOPICS] == Schedule(after_turns=20) and on["decay"] == Schedule(every_s=3600.0)


@pytest.mark.parametrize("changes", [
    {"distill_after_turns": 0}, {"distill_idle_s": 0}, {"distill_idle_s": "soon"}, {"topics_after_turns": 2.5},
    {"topics_after_turns": True}, {"topics_idle_s": -1}, {"topics_every_s": 0}, {"job_log": 0},
])
def test_bad_scheduler_settings_are_refused(changes):
    with pytest.raises(ConfigError):
        Config(**changes)


def test_scheduler_settings_load_from_the_environment():
    config = Config.load(environ={"ENGRAM_TOPICS_AFTER_TURNS": "25", "ENGRAM_DISTILL_IDLE_S": "30",
                                  "ENGRAM_TOPICS_EVERY_S": ""})
    assert (config.topics_after_turns, config.distill_idle_s, config.topics_every_s) == (25, 30.0, None)


# -- Memory.jobs()["runs"] -----------------------------------------------------------------


def test_jobs_shows_each_distillation_run_and_why_without_memory_text(db_path):
    with Memory(db_path, embedder=FakeEmbedder(), config=Config(extractor="fake")) as mem:
        assert mem.jobs()["runs"] == []
        mem.add(SECRET, user_id="alice")
        assert mem.flush(30)
        wait_for(lambda: distilled(mem))
        (run,) = distilled(mem)
        assert (run["capability"], run["user_id"], run["items"], run["error"]) == (DISTILL, "alice", 1, None)
        assert run["trigger"] in ("after 1 turn", FLUSH)  # the runner or flush() took it first
        assert run["started_at"] <= run["finished_at"] and run["seconds"] >= 0
        # the notes lane's rounds are logged too: what distillation left without a note
        wait_for(lambda: [r for r in mem.jobs()["runs"] if r["capability"] == NOTES])
        notes = [r for r in mem.jobs()["runs"] if r["capability"] == NOTES]
        assert notes[0]["user_id"] == "alice" and notes[0]["trigger"] == QUEUED and notes[0]["items"] >= 1
        assert all(r["error"] is None for r in notes)
        assert mem.jobs(user_id="bob")["runs"] == []
        assert "flowerpot" not in json.dumps(mem.jobs())


def distilled(mem: Memory) -> list[dict]:
    """The distillation runs of `mem.jobs()["runs"]` (the notes lane logs its own)."""
    return [r for r in mem.jobs()["runs"] if r["capability"] == DISTILL]


def test_turns_wait_for_their_threshold_then_run_together(db_path):
    config = Config(extractor="fake", distill_after_turns=3)
    with Memory(db_path, embedder=FakeEmbedder(), config=config) as mem:
        mem.add("first", user_id="alice")
        mem.add("second", user_id="alice")
        assert mem.jobs()["pending"] == 2  # held back: never in add()'s path, not due yet
        mem.add("third", user_id="alice")
        wait_for(lambda: mem.jobs()["pending"] == 0 and distilled(mem))
        runs = distilled(mem)
        assert [r["trigger"] for r in runs] == ["after 3 turns"] and runs[0]["items"] == 3
        mem.add("fourth", user_id="alice")
        assert mem.flush(30)  # flush() runs what is not due yet
        assert [r["trigger"] for r in distilled(mem)] == ["after 3 turns", FLUSH]


def test_an_idle_store_distils_what_is_held_back(db_path):
    config = Config(extractor="fake", distill_after_turns=1000, distill_idle_s=0.2)
    with Memory(db_path, embedder=FakeEmbedder(), config=config) as mem:
        mem.add("a turn that waits for a quiet moment", user_id="alice")
        wait_for(lambda: distilled(mem))
        assert [r["trigger"] for r in distilled(mem)] == ["idle 0.2 s"]


def test_an_erasure_rederives_at_once_whatever_the_threshold(db_path):
    config = Config(extractor="fake", distill_after_turns=1000)
    with Memory(db_path, embedder=FakeEmbedder(), config=config) as mem:
        added = mem.add(["I live in Paris", "I work at Acme"], user_id="alice")
        assert mem.flush(30)
        mem.delete(added.records[0].id, user_id="alice")
        wait_for(lambda: mem.jobs()["pending"] == 0)
        assert {r["trigger"] for r in mem.jobs()["runs"]} <= {FLUSH, "queued"}


def test_topic_builds_and_decay_sweeps_are_logged(db_path):
    config = Config(extractor="fake", topics=True, decay=True)
    with Memory(db_path, embedder=FakeEmbedder(), config=config) as mem:
        mem.add("I adopted a cat named Luna", user_id="alice", session_id="s1")
        assert mem.flush(30)
        runs = mem.jobs()["runs"]
        by = {r["capability"]: r for r in runs}
        assert {DISTILL, TOPICS, "decay"} <= set(by)
        assert by[TOPICS]["user_id"] == "alice" and by[TOPICS]["trigger"] in (TIMER, FLUSH)
        assert by["decay"]["user_id"] is None and by["decay"]["trigger"] in (TIMER, FLUSH)
        assert all(r["error"] is None for r in runs)
        assert [r["capability"] for r in mem.jobs(user_id="alice")["runs"]].count("decay") == 0


def test_topics_can_wait_for_new_turns_instead_of_a_timer(db_path):
    config = Config(extractor="none", topics=True, topics_every_s=None, topics_after_turns=3)
    with Memory(db_path, embedder=FakeEmbedder(), config=config) as mem:
        mem.add(["I adopted a cat", "she is called Luna"], user_id="alice", session_id="s1")
        assert mem.jobs()["runs"] == []  # two new turns: no topic build is due
        mem.add("Luna chased a moth", user_id="alice", session_id="s2")
        wait_for(lambda: mem.jobs()["runs"])
        assert [(r["capability"], r["trigger"]) for r in mem.jobs()["runs"]] == [(TOPICS, "after 3 turns")]


def test_flush_can_leave_topics_to_their_own_trigger(db_path):
    config = Config(extractor="none", topics=True, topics_every_s=None, topics_after_turns=3, topics_at_flush=False)
    with Memory(db_path, embedder=FakeEmbedder(), config=config) as mem:
        mem.add(["I adopted a cat", "she is called Luna"], user_id="alice", session_id="s1")
        assert mem.flush(30)
        assert mem.jobs()["runs"] == []  # not due, and flush() does not force it
        mem.add("Luna chased a moth", user_id="alice", session_id="s2")
        assert mem.flush(30)  # due now: flush waits for it
        assert [(r["capability"], r["trigger"]) for r in mem.jobs()["runs"]] == [(TOPICS, "after 3 turns")]
