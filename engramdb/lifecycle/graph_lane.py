"""The graph backfill: a lane of the process's runner (runner.py) that gives the turns
distilled before the entity graph existed (migration 0010), or while `Config.graph` was
off, the edges distillation gives a turn now (distill.graph_mentions), and the memories
derived from them the phrases of their turns that they repeat.

It takes its work from the store, not from the job queue: turns past a watermark
(`meta.graph_rowid`) that have no `graph_mentions` row and that no distillation job still
names, one user and at most `BATCH` turns a round; the round's edges and the watermark
are written in one transaction, so a crash redoes at most one round. A turn read with
the graph on has its row, an empty one when it says no phrase (distill.graph_mentions),
so no row means "never read": a turn is read once, not at every open. A turn whose text
changes loses its row and moves the watermark back below it (GraphStatements.drop), so
it is read again from its new text (by its distillation job, or by this lane when that
job ran with the graph off). Edges are written only for text that is still there
(GraphStatements.put checks each memory's hash), so an erased turn gets none. Nothing of
it runs in `add()`'s path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from types import SimpleNamespace

from ..clock import Clock
from ..extract.base import Extractor, TurnInput
from ..guard import METADATA_KEY
from ..stores.base import Job, Mention, Store
from ..stores.graph_sql import GraphWork
from ..types import Scope
from .runner import Runner, StoreLane, process_runner
from .scheduler import QUEUED, Progress, Scheduler

log = logging.getLogger("engramdb.graph")

BATCH = 64  # turns per round
GRAPH_KIND = "graph"  # the lane's kind, for the runner's jobs view and the run log
RETRY_S = 30.0  # after a failed round (a dead LLM): wait this long before the next


class GraphLane(StoreLane):
    """One store's graph backfill, a lane of the process's runner."""

    def __init__(self, store: Store, extractor: Extractor, clock: Clock, *, runner: Runner | None = None,
                 batch: int = BATCH, release: Callable[[], None] | None = None,
                 scheduler: Scheduler | None = None) -> None:
        self._store = store
        self._extractor = extractor
        self._clock = clock
        self._runner = runner or process_runner()
        self._batch = batch
        self._release = release  # lets go of the shared extractor
        self._scheduler = scheduler
        self._stop = threading.Event()
        self._work: GraphWork | None = None
        self._retry_at = 0.0

    # -- control ------------------------------------------------------------------------

    def idle(self) -> bool:
        """No turn waits for its edges (one still named by a distillation job does not)."""
        work = self._store.graph_work(1)
        return work is None or not work.user_id or work.blocked

    def stalled(self) -> bool:
        """After a failed round, until RETRY_S have passed."""
        return time.monotonic() < self._retry_at

    # -- the runner's lane --------------------------------------------------------------

    def claim(self) -> Job | None:
        if self._stop.is_set() or time.monotonic() < self._retry_at:
            return None
        work = self._store.graph_work(self._batch)
        if work is None or work.blocked:
            return None
        if not work.user_id:
            self._store.write_backfill("", (), work.mark)
            return None
        self._work = work
        return Job(0, Scope(work.user_id), list(work.turns), 1, GRAPH_KIND)

    def boost(self, on: bool) -> None:
        boost = getattr(self._extractor, "boost", None)
        if callable(boost):
            boost(on)

    def run(self, job: Job) -> None:
        work, self._work = self._work, None
        if work is None or self._stop.is_set():
            return
        logged = (self._scheduler.running(GRAPH_KIND, work.user_id, QUEUED) if self._scheduler
                  else nullcontext(Progress()))
        try:
            with logged as progress:
                self._store.write_backfill(work.user_id, self.mentions(work.user_id, list(work.turns), work.mark),
                                           work.mark)
                progress.items = len(work.turns)
        except Exception as exc:  # a dead LLM, a closing store: the round is done again later
            if not self._stop.is_set():
                log.warning("graph backfill of %d turns failed: %s", len(work.turns), exc)
                self._retry_at = time.monotonic() + RETRY_S

    def mentions(self, user_id: str, turn_ids: list[str], upto: int) -> tuple[Mention, ...]:
        """The edges of these turns and of the memories derived from them that have none,
        as distillation makes them (distill.graph_mentions); a memory also derived from a
        turn past `upto` gets its edges in that turn's round."""
        from ..distill import graph_mentions

        turns = [r for r in self._store.records_by_ids(turn_ids, user_id) if r.kind == "turn"]
        readable = [t for t in turns if not t.metadata.get(METADATA_KEY)]  # as distillation: never a flagged turn
        if not readable:  # flagged turns only: each gets its empty row (read, says nothing), as in distillation
            return graph_mentions(turns, (), {})
        result = self._extractor.extract([TurnInput.from_record(t) for t in readable])
        derived = self._store.graph_derived(user_id, [t.id for t in readable], upto)
        records = {r.id: r for r in self._store.records_by_ids(sorted(derived), user_id)}
        others = sorted({t for sources in derived.values() for t in sources} - {t.id for t in readable})
        known = self._store.mentions(user_id, others) if others else {}
        inserts = [SimpleNamespace(id=i, text=records[i].text, derived_from=list(derived[i]))
                   for i in sorted(records)]
        return graph_mentions(turns, inserts, result.notes, known=known)
