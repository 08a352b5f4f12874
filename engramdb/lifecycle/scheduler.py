"""When background work runs, and a log of what ran and why (MemOS's scheduler).

Each capability's work (distillation, topic builds, the decay sweep, reflection) runs in
the process's runner (lifecycle/runner.py), never in `add()`'s path: `add()` only
`note()`s how many turns a scope received. Whether a capability's work is due for a
scope is decided by `decide()` (pure) from its `Schedule`:

- after N new turns of the scope since its last run ("after 10 turns");
- when idle: no `add()` to this store for T seconds ("idle 30 s");
- on a timer: T seconds since its last run for the scope ("timer");
- always when `flush()` waits for it ("flush").

`Scheduler` keeps the counters and a bounded log of recent runs (`RunLog`): capability,
the scope's user id, the trigger, when it started and finished, items done and the error
if any; never a memory's text. `Memory.jobs()` shows it as `runs`. The notes lane
(lifecycle/notes_lane.py) is not scheduled (it takes what distillation leaves without a
note) but logs each round, as capability "notes", trigger "queued"."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

DISTILL = "distill"
TOPICS = "topics"
DECAY = "decay"
REFLECT = "reflect"
CAPABILITIES = (DISTILL, TOPICS, DECAY, REFLECT)
NOTES = "notes"  # runs whenever distillation leaves memories without a note (QUEUED): logged, not scheduled

FLUSH = "flush"
TIMER = "timer"
QUEUED = "queued"  # work queued by something other than add(): an erasure's re-derivation, a restart
RUN_LOG = 200  # runs kept by default (Config.job_log)


@dataclass(frozen=True)
class Schedule:
    """When one capability's work is due for a scope; None switches that trigger off."""

    after_turns: int | None = None
    idle_s: float | None = None
    every_s: float | None = None


EVERY_TURN = Schedule(after_turns=1)  # distillation's default: each add()'s turns, at once


def decide(schedule: Schedule, *, new_turns: int, idle_s: float | None, since_run_s: float | None,
           flushing: bool = False) -> str | None:
    """Why the work is due now, or None when it is not (pure).

    `new_turns`: turns the scope received since the work last ran for it; `idle_s`:
    seconds since the store's last add() (None: none since it opened); `since_run_s`:
    seconds since the work last ran for the scope (None: never). The caller asks only
    when it has work for the scope (queued jobs, a scope marked for a rebuild)."""
    if flushing:
        return FLUSH
    if schedule.after_turns is not None and new_turns >= schedule.after_turns:
        return f"after {new_turns} turn{'' if new_turns == 1 else 's'}"
    if schedule.idle_s is not None and new_turns and idle_s is not None and idle_s >= schedule.idle_s:
        return f"idle {schedule.idle_s:g} s"
    if schedule.every_s is not None and (since_run_s is None or since_run_s >= schedule.every_s):
        return TIMER
    return None


@dataclass(frozen=True)
class Run:
    """One run of background work, as `Memory.jobs()["runs"]` shows it (no memory text)."""

    capability: str
    user_id: str | None  # the scope's user; None for store-wide work (the decay sweep)
    trigger: str
    started_at: str
    finished_at: str | None = None
    seconds: float | None = None  # wall time it took
    items: int = 0  # turns distilled, topics built, memories archived, thoughts formed
    error: str | None = None  # the error's type only: a message may quote what it was reading


class RunLog:
    """The most recent runs, oldest first, bounded; safe across threads."""

    def __init__(self, size: int = RUN_LOG) -> None:
        self._runs: deque[Run] = deque(maxlen=size)
        self._lock = threading.Lock()

    def append(self, run: Run) -> None:
        with self._lock:
            self._runs.append(run)

    def recent(self, user_id: str | None = None) -> list[dict]:
        with self._lock:
            runs = list(self._runs)
        return [asdict(r) for r in runs if user_id is None or r.user_id == user_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)


class Progress:
    """What a run did, filled in by the work (`Scheduler.running`)."""

    def __init__(self) -> None:
        self.items = 0
        self.error: str | None = None  # a failure the work recorded itself (on its job) instead of raising


class Scheduler:
    """One store's counters and run log. `now()` gives the stored timestamps (the
    Memory's clock); `monotonic()` measures idle time and durations."""

    def __init__(self, schedules: dict[str, Schedule], *, now: Callable[[], str], log_size: int = RUN_LOG,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._schedules = dict(schedules)
        self._now = now
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._new: dict[tuple[str, str], int] = {}  # (capability, user id) -> turns since its last run
        self._ran: dict[tuple[str, str], float] = {}  # (capability, user id) -> when it last ran
        self._last_add: float | None = None
        self.log = RunLog(log_size)

    def schedule(self, capability: str) -> Schedule:
        return self._schedules.get(capability, Schedule(after_turns=1))

    def note(self, user_id: str, turns: int) -> None:
        """add() stored `turns` turns of this user's scope (cheap: counters under a lock)."""
        with self._lock:
            self._last_add = self._monotonic()
            for capability, schedule in self._schedules.items():
                if schedule.after_turns is None and schedule.idle_s is None:
                    continue  # not triggered by turns (the decay sweep's timer)
                key = (capability, user_id)
                self._new[key] = self._new.get(key, 0) + turns

    def pending(self, capability: str, user_id: str) -> int:
        with self._lock:
            return self._new.get((capability, user_id), 0)

    def due(self, capability: str, user_id: str, *, flushing: bool = False) -> str | None:
        """Why `capability` should run for this user's scope now, or None."""
        with self._lock:
            now = self._monotonic()
            new = self._new.get((capability, user_id), 0)
            ran = self._ran.get((capability, user_id))
            idle = None if self._last_add is None else now - self._last_add
        return decide(self.schedule(capability), new_turns=new, idle_s=idle,
                      since_run_s=None if ran is None else now - ran, flushing=flushing)

    def any_due(self, capability: str, *, flushing: bool = False) -> str | None:
        """Why `capability` should run for some scope now (the first found), or None."""
        with self._lock:
            users = [u for (c, u) in self._new if c == capability]
        for user_id in users:
            trigger = self.due(capability, user_id, flushing=flushing)
            if trigger is not None:
                return trigger
        return FLUSH if flushing else None

    def ran(self, capability: str, user_id: str) -> None:
        """The work ran for this scope: its turn count starts again."""
        with self._lock:
            self._new.pop((capability, user_id), None)
            self._ran[(capability, user_id)] = self._monotonic()

    @contextmanager
    def running(self, capability: str, user_id: str | None, trigger: str) -> Iterator[Progress]:
        """Log one run: its start, end, items done (set on the Progress) and error (the
        exception goes on)."""
        progress = Progress()
        started_at, start = self._now(), self._monotonic()
        error = None
        try:
            yield progress
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            self.log.append(Run(capability, user_id, trigger, started_at, self._now(),
                                round(self._monotonic() - start, 4), progress.items, error or progress.error))


def schedules(config) -> dict[str, Schedule]:
    """Each capability's schedule from a `Config`: only those switched on (an off one is
    neither counted nor run)."""
    out = {DISTILL: Schedule(after_turns=config.distill_after_turns, idle_s=config.distill_idle_s)}
    if config.topics:
        out[TOPICS] = Schedule(after_turns=config.topics_after_turns, idle_s=config.topics_idle_s,
                               every_s=config.topics_every_s)
    if config.decay:
        out[DECAY] = Schedule(every_s=config.decay_interval_s)
    if config.reflection:
        out[REFLECT] = Schedule(after_turns=config.reflect_every_turns)
    return out
