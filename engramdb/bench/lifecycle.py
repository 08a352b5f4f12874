"""`engram bench lifecycle`: a synthetic life of one person over two simulated years —
moves, jobs, a breakup, a new pet, a diet change, among trivia — through the public API,
with decay and topics on, by Engram's injectable clock (each session at its own date).

It reports the store's size; its memories active vs archived; the background CPU per
1,000 turns; profile freshness (after each superseding turn, whether `profile()` states
the new truth once `flush()` returns, and the wall time from that add to flush's
return); and search latency at the end.

Background work is scheduled (lifecycle/scheduler.py) so that none of it runs inside
`add()`: distillation is held back until flush, topics are built after every
TOPICS_AFTER turns (or at every flush with `topics_at_flush`), no topic timer, the decay
sweep daily by the simulated clock. Background CPU: this process's threads and the offline
extractor's child while `flush()` runs, plus the runner thread's and the child's between
flushes (a topic build the scheduler started); `add()`'s own CPU (embedding, storing,
the user's searches) is not in it."""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..config import Config
from ..memory import Memory
from .synthetic import ASSISTANT_TEMPLATES, USER_TEMPLATES, _fill, questions
from .stats import latency_summary

USER = "nora"
TURNS_PER_SESSION = 10
DAYS = 730
START = datetime(2024, 1, 8, 9, 0, tzinfo=timezone.utc)
FLUSH_EVERY = 10  # sessions between flushes (and at each session with a life event)
RECALL_EVERY = 5  # sessions between the user's own questions (what is recalled is reinforced)
HELD = 1_000_000  # distill_after_turns: distillation waits for flush()
TOPICS_AFTER = 1_000  # turns between topic builds (a build reads the whole scope; at every flush: --topics-at-flush)
# Trivia that would say where the user lives or works is left out: the life's own events say it.
TRIVIA = tuple(t for t in USER_TEMPLATES if not any(w in t for w in ("lived in", "my job", "promoted")))


@dataclass(frozen=True)
class Event:
    at: float  # share of the life, 0..1
    text: str
    topic: str  # the profile's topic that must say `word`
    word: str
    gone: tuple[str, ...] = ()  # what that topic must no longer say


LIFE = (
    Event(0.0, "I live in Paris.", "home", "Paris"),
    Event(0.0, "I work at Acme.", "work", "Acme"),
    Event(0.0, "I am vegetarian.", "health", "vegetarian"),
    Event(0.0, "I'm dating Lena.", "family", "Lena"),
    Event(0.12, "I moved to Madrid.", "home", "Madrid", ("Paris",)),
    Event(0.25, "I started a new job at Globex.", "work", "Globex", ("Acme",)),
    Event(0.37, "Lena and I broke up.", "family", "single", ("Lena",)),
    Event(0.45, "I adopted a dog named Rex.", "family", "Rex", ("Lena",)),
    Event(0.55, "I'm vegan now.", "health", "vegan", ("vegetarian",)),
    Event(0.65, "I moved to Athens.", "home", "Athens", ("Madrid", "Paris")),
    Event(0.78, "I started a new job at Initech.", "work", "Initech", ("Globex", "Acme")),
    Event(0.9, "I moved to Warsaw.", "home", "Warsaw", ("Athens", "Madrid")),
)
FULL_PROFILE = 100_000  # tokens: the whole profile, to tell a budget cut from a stale profile
OWN_QUESTIONS = ("where do I live now?", "what is my dog's name?", "where do I work?", "what do I eat?")


class SimClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def sessions(turns: int, seed: int = 0) -> list[tuple[datetime, list[Event], list[dict]]]:
    """The life: (when, its events, its messages) per session of TURNS_PER_SESSION turns,
    spread evenly over DAYS."""
    rng = random.Random(seed)
    count = max(1, turns // TURNS_PER_SESSION)
    step = timedelta(days=DAYS) / count
    placed: dict[int, list[Event]] = {}
    last = -1
    for at in sorted({e.at for e in LIFE}):  # each moment of the life in a session of its own, while there are enough
        last = min(count - 1, max(int(at * count), last + 1))
        placed.setdefault(last, []).extend(e for e in LIFE if e.at == at)
    out = []
    for index in range(count):
        when = START + index * step
        events = placed.get(index, [])
        messages = [{"role": "user", "content": e.text} for e in events]
        while len(messages) < TURNS_PER_SESSION:
            role = "user" if len(messages) % 2 == 0 else "assistant"
            messages.append({"role": role, "content": _fill(rng.choice(TRIVIA if role == "user" else
                                                                       ASSISTANT_TEMPLATES), rng)})
        for n, message in enumerate(messages):
            message["timestamp"] = (when + timedelta(minutes=n)).isoformat()
        out.append((when, events, messages))
    return out


def _child_cpu() -> float:
    """CPU seconds of this process's children alive now (the offline extractor's spaCy)."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _runner_cpu() -> float:
    """CPU seconds of the background runner's thread (lifecycle/runner.py) so far."""
    import threading

    import psutil

    ids = {t.native_id for t in threading.enumerate() if t.name == "engram-runner"}
    return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id in ids)


def _said(profile, topic: str) -> str:
    return " ".join(i.text for i in profile.items if i.topic == topic)


def config(extractor: str, embedder: str, topics_at_flush: bool = False) -> Config:
    return Config(embedder=embedder, extractor=extractor, topics=True, decay=True, decay_interval_s=86_400.0,
                  distill_after_turns=HELD, topics_every_s=None, topics_after_turns=TOPICS_AFTER,
                  topics_at_flush=topics_at_flush, job_log=100_000)


def run(*, turns: int = 50_000, store: Path | None = None, embedder: str = "minilm", extractor: str = "offline",
        searches: int = 200, seed: int = 0, topics_at_flush: bool = False) -> dict[str, Any]:
    life = sessions(turns, seed)
    made = store is None
    folder = Path(tempfile.mkdtemp(prefix="engram-lifecycle-")) if made else None
    path = folder / "life.db" if folder is not None else store
    assert path is not None
    clock = SimClock(life[0][0])
    bg_cpu, fg_cpu, child_cpu, flushes = 0.0, 0.0, 0.0, 0
    fresh: list[dict[str, Any]] = []
    try:
        with Memory(path, config=config(extractor, embedder, topics_at_flush), clock=clock) as mem:
            started = time.perf_counter()
            for index, (when, events, messages) in enumerate(life):
                clock.at = when + timedelta(minutes=TURNS_PER_SESSION)
                cpu, runner, child = time.process_time(), _runner_cpu(), _child_cpu()
                t0 = time.perf_counter()
                mem.add(messages, user_id=USER, session_id=f"s{index:05d}")
                if index % RECALL_EVERY == 0:
                    mem.search(OWN_QUESTIONS[(index // RECALL_EVERY) % len(OWN_QUESTIONS)], user_id=USER, limit=5)
                aside = max(0.0, _runner_cpu() - runner)  # work the runner did meanwhile (a topic build)
                spent = max(0.0, _child_cpu() - child)
                bg_cpu += aside + spent
                child_cpu += spent
                fg_cpu += time.process_time() - cpu - aside
                if events or (index + 1) % FLUSH_EVERY == 0 or index == len(life) - 1:
                    cpu, child = time.process_time(), _child_cpu()
                    assert mem.flush(None)
                    spent = max(0.0, _child_cpu() - child)
                    bg_cpu += time.process_time() - cpu + spent
                    child_cpu += spent
                    flushes += 1
                    waited = time.perf_counter() - t0
                    if events:
                        profile, full = mem.profile(USER), mem.profile(USER, budget_tokens=FULL_PROFILE)
                        for event in events:
                            said, whole = _said(profile, event.topic), _said(full, event.topic)
                            fresh.append({"turn": event.text, "states_new_truth": event.word in said
                                          and not any(w in said for w in event.gone),
                                          "unbounded_states_it": event.word in whole
                                          and not any(w in whole for w in event.gone),
                                          "profile_complete": profile.complete,
                                          "add_to_flush_s": round(waited, 3)})
            life_s = time.perf_counter() - started
            asked = questions(searches, seed=seed + 1)
            latencies = []
            for query in asked:
                t0 = time.perf_counter()
                mem.search(query, user_id=USER, limit=10)
                latencies.append(time.perf_counter() - t0)
            assert mem.flush(None)
            stats = mem.stats()
            runs = mem.jobs()["runs"]
            home = mem.profile(USER)
        stored_turns = stats["by_kind"].get("turn", 0)
        by_state = stats["by_state"]
        derived = stats["records"] - stored_turns
        archived = by_state.get("archived", 0)
        waits = [f["add_to_flush_s"] for f in fresh]
        return {
            "turns": stored_turns, "sessions": len(life), "days": DAYS, "extractor": extractor, "embedder": embedder,
            "schedule": ("distillation held for flush(); topics " + ("at every flush" if topics_at_flush else
                         f"after {TOPICS_AFTER} turns") + "; decay sweep daily (simulated)"),
            "life_s": round(life_s, 1), "flushes": flushes,
            "store_bytes": stats["file_bytes"], "store_mb": round(stats["file_bytes"] / 1e6, 1),
            "records": stats["records"], "by_kind": stats["by_kind"], "by_state": by_state,
            "derived": derived, "derived_active": derived - archived, "archived": archived,
            "background_cpu_s": round(bg_cpu, 2),
            "extractor_child_cpu_s": round(child_cpu, 2),  # of background_cpu_s: the offline extractor's spaCy
            "background_cpu_s_per_1000_turns": round(bg_cpu / max(1, stored_turns) * 1000, 2),
            "background_cpu_ms_per_turn": round(bg_cpu / max(1, stored_turns) * 1000, 2),
            "add_cpu_ms_per_turn": round(fg_cpu / max(1, stored_turns) * 1000, 2),
            "profile_fresh": sum(f["states_new_truth"] for f in fresh), "profile_checks": len(fresh),
            "profile_fresh_unbounded": sum(f["unbounded_states_it"] for f in fresh),
            "profile_freshness": fresh,
            "add_to_flush_s": {"p50": round(statistics.median(waits), 3) if waits else None,
                               "max": max(waits) if waits else None},
            "final_profile_home": _said(home, "home"),
            "search_ms": latency_summary(latencies),
            "runs": dict(sorted(Counter(f"{r['capability']}: {r['trigger']}" for r in runs).items())),
            "run_errors": sum(1 for r in runs if r["error"]),
            "run_seconds": {c: round(sum(r["seconds"] or 0 for r in runs if r["capability"] == c), 2)
                            for c in sorted({r["capability"] for r in runs})},
        }
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def table(result: dict[str, Any]) -> list[str]:
    s = result["search_ms"]
    return [
        f"schedule: {result['schedule']}",
        f"{result['turns']} turns in {result['sessions']} sessions over {result['days']} simulated days "
        f"({result['extractor']} extractor, {result['embedder']} embedder) in {result['life_s']} s",
        f"store: {result['store_mb']} MB, {result['records']} records; derived memories {result['derived']}: "
        f"{result['derived_active']} active, {result['archived']} archived (decay on)",
        f"background CPU: {result['background_cpu_s_per_1000_turns']} s per 1,000 turns "
        f"({result['background_cpu_ms_per_turn']} ms per turn, the extractor's child {result['extractor_child_cpu_s']} s "
        f"of it; add() itself {result['add_cpu_ms_per_turn']} ms)",
        f"profile: states the new truth after {result['profile_fresh']} of {result['profile_checks']} superseding "
        f"turns once flush() returns ({result['profile_fresh_unbounded']} with no budget); add to flush p50 {result['add_to_flush_s']['p50']} s, "
        f"max {result['add_to_flush_s']['max']} s",
        f"search (decay and topics on): p50 {s['p50']} ms, p95 {s['p95']} ms, p99 {s['p99']} ms",
        "runs: " + ", ".join(f"{k} ×{v}" for k, v in result["runs"].items())
        + "; wall s by capability: " + ", ".join(f"{k} {v}" for k, v in result["run_seconds"].items()),
    ]
