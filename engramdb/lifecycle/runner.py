"""One background runner per process, shared by every `Memory` (a server's tenants
included): one thread that takes the jobs of every registered lane in turn, one job per
lane per round, so that no tenant waits behind another's backlog. A lane is one store's
queue with its handlers (today: `distill.Distiller`; later kinds plug in the same way).

Extractors are shared too (`SharedExtractors`): the offline extractor's spaCy child is
started once per process, not once per tenant. The thread runs at a low CPU priority
where the OS allows it, so that `add` and `search` keep the cores."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from ..stores.base import Job

log = logging.getLogger("engramdb.runner")

IDLE_POLL_S = 1.0  # a lane with nothing ready is asked again after this long (jobs left by a backoff)
# Distillation runs on idle CPU while it keeps up. Under saturating load it gets none and
# its backlog grows without bound (docs/benchmarks.md, "Distillation under load"): once
# a job it takes has waited this long, the runner (and the extractor's child) run at
# normal priority, sharing the cores with requests, until it takes jobs a third as old.
BOOST_AFTER_S = 30.0


class Lane(Protocol):
    """One store's queue, as the runner sees it."""

    def claim(self) -> Job | None: ...
    def run(self, job: Job) -> None: ...
    def boost(self, on: bool) -> None: ...  # its extractor's process, at normal priority or idle again


class StoreLane:
    """What a lane that takes its work from the store (not from the job queue) shares:
    waking it, waiting until no work waits, and stopping it. A subclass sets `_runner`,
    `_stop` (a threading.Event) and `_release` (what lets go of its extractor, or None),
    and says when it is `idle()` (and `stalled()`, when it has stopped trying for now)."""

    _runner: Runner
    _stop: threading.Event
    _release: Callable[[], None] | None

    def idle(self) -> bool:
        """No work waits for this lane."""
        raise NotImplementedError

    def stalled(self) -> bool:
        """The lane has work it will not try yet (after a failed round); wait() gives up."""
        return False

    def wake(self) -> None:
        if not self._stop.is_set():
            self._runner.add(self)

    def wait(self, timeout: float | None) -> bool:
        """Until no work waits and none runs; False on timeout or while stalled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.wake()
        while True:
            if self.idle() and not self._runner.running(self):
                return True
            if not self._runner.alive(self) or self.stalled():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self, timeout: float = 4.0) -> None:
        self._stop.set()
        self._runner.remove(self, timeout)
        if self._release is not None:
            self._release()
            self._release = None


class Runner:
    def __init__(self) -> None:
        self._lanes: list[Lane] = []
        self._lock = threading.Condition()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: Lane | None = None  # whose job is being run now
        self._turn = 0
        self.boosted = False  # running at normal priority: the backlog is too old

    def add(self, lane: Lane) -> None:
        with self._lock:
            if lane not in self._lanes:
                self._lanes.append(lane)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="engram-runner", daemon=True)
                self._thread.start()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def running(self, lane: Lane) -> bool:
        with self._lock:
            return self._running is lane

    def alive(self, lane: Lane) -> bool:
        with self._lock:
            return lane in self._lanes and self._thread is not None and self._thread.is_alive()

    def remove(self, lane: Lane, timeout: float) -> bool:
        """Take a lane out; wait up to `timeout` for its job in flight. True when none is
        left running for it."""
        with self._lock:
            if lane in self._lanes:
                self._lanes.remove(lane)
            return self._lock.wait_for(lambda: self._running is not lane, timeout)

    def lanes(self) -> int:
        with self._lock:
            return len(self._lanes)

    def _pace(self, lane: Lane, job: Job) -> None:
        """Idle priority while jobs are taken young; normal once one has waited too long."""
        age = waited(job)
        if age is None:
            return
        want = age > BOOST_AFTER_S or (self.boosted and age > BOOST_AFTER_S / 3)
        if want != self.boosted:
            self.boosted = want
            _set_priority(0 if want else LOW_NICE)
            log.info("distillation %s: a job had waited %.0f s", "catching up" if want else "keeping up", age)
        boost = getattr(lane, "boost", None)
        if callable(boost):
            boost(self.boosted)

    def _next(self) -> list[Lane]:
        """The lanes, starting one further each round (round robin)."""
        with self._lock:
            lanes = list(self._lanes)
            if not lanes:
                return []
            self._turn = (self._turn + 1) % len(lanes)
            return lanes[self._turn:] + lanes[:self._turn]

    def _loop(self) -> None:
        _lower_priority()
        while True:
            lanes = self._next()
            if not lanes:
                with self._lock:
                    if not self._lanes:
                        self._thread = None
                        return
                continue
            ran = False
            for lane in lanes:
                with self._lock:
                    if lane not in self._lanes:
                        continue
                    self._running = lane
                try:
                    job = lane.claim()
                    if job is not None:
                        ran = True
                        self._pace(lane, job)
                        lane.run(job)
                except Exception:  # a closing or broken store: its jobs stay queued
                    log.exception("a background job's lane failed")
                finally:
                    with self._lock:
                        self._running = None
                        self._lock.notify_all()
            if not ran:
                self._wake.wait(IDLE_POLL_S)
                self._wake.clear()


def waited(job: Job, now: float | None = None) -> float | None:
    """Seconds since the job was queued (None when its time is not known)."""
    from ..clock import parse_ts

    if not job.created_at:
        return None
    try:
        queued = parse_ts(job.created_at)
    except ValueError:
        return None
    return (time.time() if now is None else now) - queued.timestamp()


_runner: tuple[int, Runner] | None = None
_runner_lock = threading.Lock()


def process_runner() -> Runner:
    """This process's runner (a forked child gets one of its own)."""
    global _runner
    with _runner_lock:
        if _runner is None or _runner[0] != os.getpid():
            _runner = (os.getpid(), Runner())
        return _runner[1]


class SharedExtractors:
    """Extractors by configuration, made once and shared; closed when the last user lets go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Hashable, tuple[Any, int]] = {}

    def acquire(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            found = self._held.get(key)
            if found is None:
                found = (make(), 0)
            self._held[key] = (found[0], found[1] + 1)
            return found[0]

    def release(self, key: Hashable) -> None:
        with self._lock:
            found = self._held.get(key)
            if found is None:
                return
            if found[1] > 1:
                self._held[key] = (found[0], found[1] - 1)
                return
            del self._held[key]
        close = getattr(found[0], "close", None)
        if callable(close):
            close()

    def users(self, key: Hashable) -> int:
        with self._lock:
            found = self._held.get(key)
            return found[1] if found else 0


_extractors: tuple[int, SharedExtractors] | None = None


def shared_extractors() -> SharedExtractors:
    global _extractors
    with _runner_lock:
        if _extractors is None or _extractors[0] != os.getpid():
            _extractors = (os.getpid(), SharedExtractors())
        return _extractors[1]


LOW_NICE = 10


def _lower_priority() -> None:
    """Nice this thread (Linux schedules threads one by one); elsewhere, do nothing."""
    _set_priority(LOW_NICE)


def _set_priority(nice: int) -> None:
    try:  # raising it back needs the privilege to (CAP_SYS_NICE or RLIMIT_NICE): without, it stays low
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):
        pass
