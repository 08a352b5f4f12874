"""The vitals lane: one store's vitals work as a lane of the process's runner
(lifecycle/runner.py), never in the read path.

Search, recall and context only `note()` what they returned (an append to a list under
a lock); the runner's thread writes the notes in batches (strength +1 per recall,
last recall time), revives archived memories a query matched exactly, and, with decay
on, sweeps every `interval` for derived memories whose retention fell below the
threshold (living/vitals.py decides; the store's VitalSigns execute)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import Clock, format_ts
from ..keys import content_hash
from ..living.vitals import ACTIVE, ARCHIVED, DAY_S, RECALLED_EXACTLY, to_archive, untouched_since
from ..stores.base import Job, Store
from ..types import Scope
from .runner import Runner, process_runner

log = logging.getLogger("engramdb.vitals")

VITALS = "vitals"  # the kind of this lane's work (never queued in the store: it is derived from use)
MAX_NOTES = 100_000  # notes kept between two writes; past it the oldest are dropped (a stalled writer)
SWEEP_PAGE = 500
STOP_S = 2.0


@dataclass(frozen=True)
class Decay:
    """When memories fade: tau (seconds), threshold, and how often the sweep runs."""

    tau_s: float
    threshold: float
    interval_s: float

    @classmethod
    def of(cls, tau_days: float, threshold: float, interval_s: float) -> "Decay":
        return cls(tau_days * DAY_S, threshold, interval_s)


class VitalsLane:
    def __init__(self, store: Store, clock: Clock, *, decay: Decay | None, runner: Runner | None = None,
                 actor: str | None = None) -> None:
        self._store = store
        self._clock = clock
        self._decay = decay
        self._runner = runner or process_runner()
        self._actor = actor
        self._lock = threading.Lock()
        self._work_lock = threading.Lock()  # the runner's thread and flush() never write the same notes twice
        self._recalls: list[tuple[tuple[str, ...], str]] = []  # (ids, at)
        self._queries: list[tuple[str, str]] = []  # (user_id, content hash of a query)
        self._joined = False
        self._stopped = False
        self._last_sweep: datetime | None = None  # None: sweep at the first chance
        self.archived = 0  # memories this lane archived since it opened
        self.revived = 0

    # -- the read path's side: cheap -------------------------------------------------

    def note(self, user_id: str, ids: list[str], query: str | None = None) -> None:
        """What a search / recall returned (and its query, for exact-match revival)."""
        if self._stopped or (not ids and query is None):
            return
        at = format_ts(self._clock.now())
        with self._lock:
            if ids:
                self._recalls.append((tuple(ids), at))
                if len(self._recalls) > MAX_NOTES:
                    del self._recalls[: len(self._recalls) - MAX_NOTES]
            if query is not None:
                self._queries.append((user_id, content_hash(query.strip())))
                if len(self._queries) > MAX_NOTES:
                    del self._queries[: len(self._queries) - MAX_NOTES]
            join = not self._joined
            self._joined = True
        if join:
            self._runner.add(self)

    def start(self) -> None:
        """Join the runner now (decay on: the sweep runs without any search)."""
        with self._lock:
            join = not self._joined and not self._stopped
            self._joined = True
        if join:
            self._runner.add(self)

    # -- the runner's lane --------------------------------------------------------------

    def claim(self) -> Job | None:
        if self._stopped:
            return None
        with self._lock:
            noted = bool(self._recalls or self._queries)
        if noted or self.sweep_due():
            return Job(0, Scope(VITALS), [], 1, VITALS)
        return None

    def run(self, job: Job) -> None:
        self.drain()
        if self.sweep_due():
            self.sweep()

    def boost(self, on: bool) -> None:
        """Nothing to boost: the lane runs in the runner's thread."""

    # -- the work -----------------------------------------------------------------------

    def drain(self) -> None:
        """Write what was noted: recalls reinforce, exact queries revive."""
        with self._work_lock:
            with self._lock:
                recalls, self._recalls = self._recalls, []
                queries, self._queries = self._queries, []
            counts: Counter[str] = Counter()
            last = ""
            for ids, at in recalls:
                counts.update(set(ids))
                last = max(last, at)
            if counts:
                self._store.reinforce(dict(counts), at=last, how="recall")
            by_user: dict[str, set[str]] = {}
            for user_id, digest in queries:
                by_user.setdefault(user_id, set()).add(digest)
            for user_id, digests in sorted(by_user.items()):
                found = self._store.archived_matching(user_id, sorted(digests))
                if found:
                    at = format_ts(self._clock.now())
                    revived = self._store.set_state([(m, RECALLED_EXACTLY) for m in found], ACTIVE, at=at,
                                                    actor=self._actor)
                    self._store.reinforce({m: 1 for m in revived}, at=at, how="recall")
                    self.revived += len(revived)

    def sweep_due(self) -> bool:
        if self._decay is None:
            return False
        last = self._last_sweep
        return last is None or self._clock.now() - last >= timedelta(seconds=self._decay.interval_s)

    def sweep(self) -> int:
        """Archive every active derived memory whose retention is below the threshold;
        returns how many. Pages through only what was not recalled for long enough."""
        if self._decay is None:
            return 0
        with self._work_lock:
            now = self._clock.now()
            self._last_sweep = now
            decay = self._decay
            before = format_ts(untouched_since(now, decay.tau_s, decay.threshold))
            archived, after = 0, 0
            while not self._stopped:
                page = self._store.decay_candidates(before=before, after_rowid=after, limit=SWEEP_PAGE)
                if not page:
                    break
                after = page[-1][0]
                fading = to_archive([c for _, c in page], now, tau_s=decay.tau_s, threshold=decay.threshold)
                archived += len(self._store.set_state(fading, ARCHIVED, at=format_ts(now), actor=self._actor))
            self.archived += archived
            if archived:
                log.info("decay archived %d memories", archived)
            return archived

    def stop(self, timeout: float = STOP_S) -> None:
        """Write what was noted (best effort) and leave the runner."""
        self._stopped = True
        if self._joined:
            self._runner.remove(self, timeout)
        try:
            self.drain()
        except Exception:  # a closing store: recalls are statistics, not data
            log.exception("writing the last recalls failed")
