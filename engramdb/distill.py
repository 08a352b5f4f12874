"""The distillation worker: turns become memories in the background.

`Memory.add` stores the turns and, in the same transaction, a job naming them. This
worker claims jobs from the store (a lease: a job whose worker died is claimed again
once the lease runs out), extracts candidates (extract/), reconciles them with what is
stored (reconcile.py), embeds the new memories and writes them, the retirements and the
job's end in one transaction. A dead LLM or a crash loses nothing: the job is retried
with backoff, and parked as failed (visible in `Memory.jobs()`) after `MAX_ATTEMPTS`.

Every store's queue is a lane of the process's one runner (lifecycle/runner.py), whose
thread runs at a low CPU priority, so that `add` and `search` keep the cores."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

import numpy as np

from . import guard
from .clock import Clock, format_ts
from .errors import ProviderError
from .extract.base import Extractor, TurnInput, TurnNotes
from .graph import mentioned, phrase_keys
from .keys import content_hash, index_text
from .reconcile import Plan, plan, slot_key
from .retrieval import same_text_key
from .lifecycle.runner import Runner, process_runner
from .lifecycle.scheduler import EVERY_TURN, FLUSH, QUEUED, Scheduler
from .stores.base import DISTILL, REDERIVE, REFLECT, Job, JobOutcome, Mention, NewRecord, Store
from .types import Record

log = logging.getLogger("engramdb.distill")

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
BATCH_JOBS = 16  # ready jobs of one scope and kind distilled together (a backlog in fewer rounds)
STOP_S = 4.0  # a process stops within 5 s of SIGTERM, whatever its jobs are doing


class _Stopped(Exception):
    """The lane stopped while its job ran."""


def backoff(attempts: int) -> timedelta:
    """Wait before retry `attempts` + 1: 2 s, 8 s, 32 s, … capped at 10 minutes."""
    return timedelta(seconds=min(600, 2 * 4 ** max(0, attempts - 1)))


class Distiller:
    """One store's distillation queue: a lane of the process's runner
    (lifecycle/runner.py), which takes its jobs in turn with every other store's."""

    def __init__(self, store: Store, extractor: Extractor, embed: Callable[[list[str]], np.ndarray],
                 clock: Clock, *, runner: Runner | None = None, release: Callable[[], None] | None = None,
                 lease: timedelta = LEASE, handlers: Mapping[str, Callable[[Job], object]] | None = None,
                 scheduler: Scheduler | None = None, done: Callable[[Job], None] | None = None,
                 graph: bool = True) -> None:
        self._store = store
        self._done = done  # told after each job that ended (its memories may supersede or retract others)
        self._graph = graph  # record the entity graph's edges (graph.py) of what is distilled
        self._scheduler = scheduler  # when jobs are taken (lifecycle/scheduler.py), and the log of runs
        self._requests, self._served = 0, 0  # wakes by other than add() (a restart, an erasure), and those served
        self._flushing = 0
        self._trigger = QUEUED  # why the job claimed last was taken
        self._error: str | None = None
        self._handlers = dict(handlers or {})  # more job kinds run in this lane (e.g. reflection)
        self._extractor = extractor
        self._embed = embed
        self._clock = clock
        self._runner = runner or process_runner()
        self._release = release  # lets go of a shared extractor
        self._lease = lease
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._current: Job | None = None  # the job the runner is running for this lane
        self.processed = 0

    # -- control ----------------------------------------------------------------------

    def wake(self, *, requested: bool = True) -> None:
        """New work was queued: join the runner if needed, and wake it. `requested=False`
        (add()'s turns): taken when the scheduler says they are due."""
        if self._stop.is_set():
            return
        if requested:
            self._requests += 1
        self._idle.clear()
        self._runner.add(self)

    def wait(self, timeout: float | None) -> bool:
        """Until no job is ready to run (claimable now); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._flushing += 1
        try:
            self.wake()
            while True:
                if self._ready_jobs() == 0:
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(0.05 if remaining is None else min(0.05, remaining))
        finally:
            self._flushing -= 1

    def stop(self, timeout: float = STOP_S) -> None:
        """Stop within `timeout`: a job being distilled is not waited for (the extractor
        is closed under it: a shared child starts again on its next use) but released to
        the queue, for this or another process."""
        self._stop.set()
        if self._runner.running(self):
            close = getattr(self._extractor, "close", None)
            if callable(close):
                close()
        if not self._runner.remove(self, timeout):
            job = self._current  # still running (a child started after the close, say): give it back
            if job is not None:
                try:
                    self._store.release_job(job, at=self._now())
                except Exception:
                    log.exception("releasing job %s failed; its lease runs out instead", job.id)
        if self._release is not None:
            self._release()
            self._release = None

    def _ready_jobs(self) -> int:
        return self._store.job_stats(now=self._now())["ready"] if self._runner.alive(self) else 0

    # -- the runner's lane --------------------------------------------------------------

    def claim(self) -> Job | None:
        if self._stop.is_set():
            return None
        requests = self._requests
        gate = self._gate()
        if gate is None:
            return None
        job = self._store.claim_job(now=self._now(), lease_until=self._now(self._lease), batch=BATCH_JOBS)
        if job is None:
            self._served = requests  # a wake since was not served yet
            if self._store.job_stats()["pending"] == 0:
                self._idle.set()
            return None
        self._trigger = self._why(job, gate)
        return job

    def _gate(self) -> str | None:
        """Why jobs may be taken now (None: the scheduler holds add()'s turns back). With
        the default schedule (after every turn) jobs are always taken, retries included;
        with another, a job waiting out a retry backoff runs at its scope's next trigger."""
        if self._scheduler is None:
            return QUEUED
        if self._flushing:
            return FLUSH
        if self._requests != self._served:
            return QUEUED
        due = self._scheduler.any_due(DISTILL)
        if due is None and self._scheduler.schedule(DISTILL) == EVERY_TURN:
            return QUEUED  # a retry after its backoff
        return due

    def _why(self, job: Job, gate: str) -> str:
        if self._scheduler is None:
            return gate
        if job.kind == REFLECT:
            every = self._scheduler.schedule(REFLECT).after_turns
            return FLUSH if self._flushing else f"after {every} turns" if every else gate
        if job.kind == REDERIVE:
            return QUEUED
        return self._scheduler.due(DISTILL, job.scope.user_id, flushing=self._flushing > 0) or gate

    KINDS = (DISTILL, REDERIVE)  # re-derivation is distillation of what an erasure or update left

    def boost(self, on: bool) -> None:
        """The extractor's own process (the offline one's spaCy child) at normal priority,
        or back to idle."""
        boost = getattr(self._extractor, "boost", None)
        if callable(boost):
            boost(on)

    def run(self, job: Job) -> None:
        # A kind written by a newer Engram (or one switched off here): park it, visibly, for that one.
        if job.kind not in self.KINDS and job.kind not in self._handlers:
            self._store.fail_job(job, f"unknown job kind {job.kind!r}", at=self._now(), retry_at=None)
            return
        self._current = job
        try:
            if self._scheduler is None:
                self.run_job(job)
                return
            capability = REFLECT if job.kind == REFLECT else DISTILL
            if capability == DISTILL:
                self._scheduler.ran(DISTILL, job.scope.user_id)
            with self._scheduler.running(capability, job.scope.user_id, self._trigger) as progress:
                before, self._error = self.processed, None
                self.run_job(job)
                progress.items, progress.error = self.processed - before, self._error
        finally:
            self._current = None

    def run_job(self, job: Job) -> Plan | None:
        """Distil one job; failures are recorded on the job, never raised."""
        try:
            done = self._handlers[job.kind](job) if job.kind in self._handlers else self._distil(job)
            self.processed += len(job.ids)
        except Exception as exc:  # a dead LLM, bad output that slipped through, a bug
            if self._stop.is_set():  # stopping closed the extractor under it: not the job's fault
                try:
                    self._store.release_job(job, at=self._now())
                except Exception:
                    log.exception("releasing job %s failed; its lease runs out instead", job.id)
                return None
            kind = "provider" if isinstance(exc, ProviderError) else type(exc).__name__
            self._error = type(exc).__name__
            give_up = job.attempts >= MAX_ATTEMPTS
            if not isinstance(exc, ProviderError):
                log.exception("distillation job %s failed (attempt %s)", job.id, job.attempts)
            try:
                self._store.fail_job(job, f"{kind}: {exc}", at=self._now(),
                                     retry_at=None if give_up else self._now(backoff(job.attempts)))
            except Exception:
                log.exception("recording the failure of job %s failed", job.id)
            return None
        if self._done is not None:
            self._done(job)  # outside the try: the job is done; what its listener does is not the job's
        return done

    def _distil(self, job: Job) -> Plan:
        turns = [r for r in self._store.records_by_ids(job.record_ids, job.scope.user_id) if r.kind == "turn"]
        # A turn that carries instructions (guard.py) is never read as true: not distilled,
        # and no candidate that cites one, or reads as an instruction itself, is kept.
        flags = {t.id: t.metadata.get(guard.METADATA_KEY) for t in turns}
        readable = [t for t in turns if not flags[t.id]]
        if self._stop.is_set():  # stopping: the job is released, not extracted now
            raise _Stopped()
        result = self._extractor.extract([TurnInput.from_record(t) for t in readable]) if readable else None
        candidates = [c for c in (result.candidates if result else [])
                      if not guard.candidate_is_tainted(c.text, [flags.get(s) for s in c.sources])]
        slots = sorted({key for c in candidates if (key := slot_key(c)) is not None})
        stored = self._store.slot_memories(job.scope.user_id, slots)
        keys = {same_text_key(c.text): content_hash(c.text) for c in candidates if slot_key(c) is None}
        duplicates = {same_text_key(r.text): r for r in self._store.current_derived(job.scope.user_id,
                                                                                     sorted(set(keys.values())))}
        linked = {same_text_key(r.text): (r, event)
                  for r, event in self._store.derived_of(job.scope.user_id, [t.id for t in turns])}
        decided = plan(
            candidates, stored, duplicates, scope=job.scope, recorded_at=self._now(),
            turn_sources={t.id: t.sources for t in turns}, extractor=self._extractor.name, text_key=same_text_key,
            linked=linked,
        )
        vectors = (self._embed([index_text(r.text, r.name) for r in decided.inserts]) if decided.inserts
                   else np.zeros((0, 0), dtype=np.float32))
        outcome = JobOutcome(decided.inserts, vectors, decided.retirements, decided.confirmations,
                             decided.revivals, frozenset(decided.sufficient),
                             mentions=graph_mentions(turns, decided.inserts,
                                                     (result.notes if result else {}) if self._graph else None))
        if self._stop.is_set():  # stopped meanwhile: the job was released, another takes it
            raise _Stopped()
        self._store.complete_job(job, outcome, at=self._now(), actor=f"distill:{self._extractor.name}")
        return decided

    def _now(self, ahead: timedelta | None = None) -> str:
        now = self._clock.now()
        return format_ts(now + ahead if ahead else now)


def graph_mentions(turns: Sequence[Record], inserts: Sequence[NewRecord],
                   notes: Mapping[str, TurnNotes] | None,
                   known: Mapping[str, Sequence[str]] | None = None) -> tuple[Mention, ...]:
    """The entity graph's edges (graph.py) of distilled turns and their new memories: a
    turn says the entities, noun phrases and keywords the extractor noted in it; a derived memory, those
    of its turns that its own text repeats (`known`: the stored phrases of its turns not in
    `turns`, for the graph backfill, lifecycle/graph_lane.py). Every turn and memory gets
    its row, an empty one when it says no phrase (a flagged turn, which is never read, or
    one the extractor noted nothing in): the graph backfill takes a memory without a row
    for one never read, and would read it again at every open. `notes` None: the graph is
    off, nothing is written (the backfill reads these turns once it is on)."""
    if notes is None:
        return ()
    said = {t.id: phrase_keys([*(e.text for e in notes[t.id].entities), *notes[t.id].phrases,
                               *notes[t.id].keywords]) if t.id in notes else ()
            for t in turns}
    out = [Mention(t.id, content_hash(t.text), said[t.id]) for t in turns]
    said = {**(known or {}), **said}
    out.extend(derived_mention(rec.id, rec.text, rec.derived_from, said) for rec in inserts)
    return tuple(out)


def derived_mention(memory_id: str, text: str, turns: Sequence[str],
                    said: Mapping[str, Sequence[str]]) -> Mention:
    """A derived memory's edges: the phrases of its `turns` (`said`: each turn's phrases)
    that its own `text` repeats, for that text (distillation, and Memory.update)."""
    return Mention(memory_id, content_hash(text), mentioned(text, [k for turn in turns for k in said.get(turn, ())]))
