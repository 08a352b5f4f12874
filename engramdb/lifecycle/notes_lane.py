"""The notes lane: a lane of the process's runner (runner.py) that gives every memory a
note, links it to related memories and lets its neighbours' notes evolve
(living/notes.py decides; the store writes each batch in one transaction).

It takes its work from the store, not from the job queue: memories that have no note
(found past a watermark) and memories queued because their text changed or a neighbour
that shaped their note was erased. Nothing of it runs in `add()`'s path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Protocol

import numpy as np

from ..clock import Clock, format_ts
from ..errors import ProviderError
from ..keys import content_hash
from ..living import notes as policy
from ..living.notes import Draft, Evolution, Made, Note, NotesBatch, NoteWork, Relation
from ..stores.base import Job, Store
from ..stores.filters import Condition, current
from ..types import Record, Scope
from .blas import one_thread
from .runner import Runner, StoreLane, process_runner
from .scheduler import NOTES, QUEUED, Progress, Scheduler

log = logging.getLogger("engramdb.notes")

BATCH = 32  # memories per round
DENSE_CANDIDATES = 8
KEYWORD_CANDIDATES = 16
NOTE_KIND = "note"  # the lane's kind, for the runner's jobs view
ACTOR = "notes"


class NoteWriter(Protocol):
    """Writes notes for memories; `name` is what `Note.made_by` records."""

    name: str

    def write(self, records: Sequence[Record]) -> dict[str, Draft]: ...


class OfflineNotes:
    name = "offline"

    def write(self, records: Sequence[Record]) -> dict[str, Draft]:
        return {r.id: policy.offline_note(r) for r in records}


class NotesLane(StoreLane):
    """One store's notes work, a lane of the process's runner."""

    def __init__(self, store: Store, clock: Clock, *, writer: NoteWriter | None = None,
                 runner: Runner | None = None, batch: int = BATCH,
                 release: Callable[[], None] | None = None, scheduler: Scheduler | None = None) -> None:
        self._store = store
        self._scheduler = scheduler  # logs each round in Memory.jobs()["runs"] (lifecycle/scheduler.py)
        self._clock = clock
        self._writer = writer or OfflineNotes()
        self._runner = runner or process_runner()
        self._batch = batch
        self._release = release
        self._stop = threading.Event()
        self._work: NoteWork | None = None
        self.cpu_s = 0.0  # CPU time of the runner's thread spent on them (bench lifecycle reads it)

    # -- control ------------------------------------------------------------------------

    def idle(self) -> bool:
        """No memory waits for its note."""
        work = self._store.note_work(1)
        return work is None or not work.user_id

    # -- the runner's lane --------------------------------------------------------------

    def claim(self) -> Job | None:
        if self._stop.is_set():
            return None
        work = self._store.note_work(self._batch)
        if work is None:
            return None
        if not work.user_id:  # every memory has its note: only the watermark moves
            self._store.write_notes("", NotesBatch(mark=work.mark), at=self._now(), actor=ACTOR)
            return None
        self._work = work
        return Job(0, Scope(work.user_id), [*work.queued, *work.fresh], 1, NOTE_KIND)

    def boost(self, on: bool) -> None:
        """Nothing of its own to boost: offline notes are made in the runner's thread."""

    def run(self, job: Job) -> None:
        work, self._work = self._work, None
        if work is None or self._stop.is_set():
            return
        started = time.thread_time()
        logged = self._scheduler.running(NOTES, work.user_id, QUEUED) if self._scheduler else nullcontext(Progress())
        try:
            with logged as progress:
                self._store.write_notes(work.user_id, self.plan(work), at=self._now(), actor=ACTOR)
                progress.items = len(set(work.queued) | set(work.fresh))  # a memory both queued and fresh once
        finally:
            self.cpu_s += time.thread_time() - started

    # -- the work -------------------------------------------------------------------------

    def plan(self, work: NoteWork) -> NotesBatch:
        """What one round writes for one user: notes made (again), links, evolutions."""
        user = work.user_id
        ids = list(dict.fromkeys([*work.queued, *work.fresh]))
        reads = _Reads(self._store, user)
        records = reads.records(ids)
        versions = reads.heads(ids)
        to_make: list[Record] = []
        remade: set[str] = set()
        rederive: set[str] = set()
        for memory_id in ids:
            record = records.get(memory_id)
            if record is None:
                continue
            now = versions.get(memory_id, [None])[-1]
            if now is None:
                to_make.append(record)
            elif now.content_hash != content_hash(record.text):
                to_make.append(record)
                remade.add(memory_id)
            else:
                rederive.add(memory_id)
        drafts = self._drafts(to_make)
        made = [Made(r.id, content_hash(r.text), drafts[r.id], policy.REMADE if r.id in remade else policy.MADE,
                     remade=r.id in remade) for r in to_make]
        fresh_notes = {m.memory_id: _as_note(m.memory_id, m.draft) for m in made}
        links = self._links([r for r in to_make if r.valid_to is None and r.kind != "summary"], reads, fresh_notes)
        evolved = self._evolve(reads, links, rederive, fresh_notes, remade)
        return NotesBatch(made=made, unlink=sorted(remade), links=links, evolved=evolved, dequeue=list(work.queued),
                          mark=work.mark)

    def _drafts(self, records: list[Record]) -> dict[str, Draft]:
        if not records:
            return {}
        offline = OfflineNotes()
        readable = [r for r in records if not r.metadata.get("flagged")]  # never hand an injection to a model
        drafts: dict[str, Draft] = {}
        if readable and self._writer.name != offline.name:
            try:
                drafts = self._writer.write(readable)
            except ProviderError as exc:  # a dead LLM: offline notes now, better ones are not owed
                log.warning("notes fell back to offline: %s", exc)
        missing = [r for r in records if r.id not in drafts]
        return {**drafts, **offline.write(missing)}

    def _links(self, records: list[Record], reads: "_Reads", fresh: dict[str, Note]) -> list[Relation]:
        if not records:
            return []
        user = reads.user
        scope = Scope(user)
        conditions = [current(), Condition("kind", "ne", "summary")]
        vectors = self._store.note_vectors(user, [r.id for r in records])
        siblings = self._store.event_siblings(user, [r.id for r in records])
        searched = [r.id for r in records if (v := vectors.get(r.id)) is not None and np.isfinite(v).all()]
        nearest = {}
        if searched:
            with one_thread():  # a small product: OpenBLAS's other threads would mostly spin (blas.py)
                found = self._store.vector_search_many(scope, np.stack([vectors[m] for m in searched]), conditions,
                                                       DENSE_CANDIDATES + 1)
            nearest = dict(zip(searched, found))
        rowids: dict[str, dict[int, float]] = {}
        for record in records:
            dense = {i.rowid: i.score for i in nearest.get(record.id, ())}
            names = policy.entities(record, fresh.get(record.id))
            keyword = []
            if names:
                keyword = [i.rowid for i in self._store.keyword_search(scope, " ".join(sorted(names)), conditions,
                                                                       KEYWORD_CANDIDATES)]
            rowids[record.id] = {**{r: 0.0 for r in keyword}, **dense}
        every = sorted({rowid for found_ in rowids.values() for rowid in found_})
        by_rowid = self._store.by_rowids(every, scope)
        reads.saw(by_rowid.values())
        others = {r.id: r for r in by_rowid.values()}
        sibling_ids = sorted({s for group in siblings.values() for s in group} - set(others))
        others.update({i: r for i, r in reads.records(sibling_ids).items() if r.valid_to is None and r.kind != "summary"})
        stored = reads.heads(sorted(set(others) - set(fresh)))
        notes_of = {**{m: v[-1] for m, v in stored.items()}, **fresh}
        out: list[Relation] = []
        for record in records:
            mine = policy.entities(record, fresh.get(record.id))
            candidates: dict[str, policy.Candidate] = {}
            for rowid, score in rowids[record.id].items():
                other = by_rowid.get(rowid)
                if other is None or other.id == record.id or _derivation(record, other):
                    continue
                shared = tuple(sorted(mine & policy.entities(other, notes_of.get(other.id))))
                candidates[other.id] = policy.Candidate(other.id, score if rowid in _dense_of(rowids, record.id)
                                                        and score > 0 else None, shared)
            for sibling in siblings.get(record.id, set()):
                if sibling in others and sibling != record.id:
                    base = candidates.get(sibling, policy.Candidate(sibling))
                    candidates[sibling] = policy.Candidate(sibling, base.similarity, base.shared, True)
            out += policy.strongest([r for c in candidates.values() if (r := policy.relation(record.id, c))])
        return _one_per_pair(out)

    def _evolve(self, reads: "_Reads", links: list[Relation], rederive: set[str], fresh: dict[str, Note],
                remade: set[str]) -> list[Evolution]:
        user = reads.user
        joined: dict[str, set[str]] = {}  # memory -> the new memories that joined its neighbourhood
        for link in links:
            if link.strength < policy.EVOLVE_MIN:
                continue
            joined.setdefault(link.dst, set()).add(link.src)
            joined.setdefault(link.src, set()).add(link.dst)
        targets = sorted(set(joined) | rederive)
        if not targets:
            return []
        stored_links = [r for r in self._store.relations(user, targets) if r.src not in remade and r.dst not in remade]
        neighbours: dict[str, dict[str, float]] = {}
        for link in [*stored_links, *links]:
            if link.strength >= policy.EVOLVE_MIN:
                neighbours.setdefault(link.src, {})[link.dst] = link.strength
                neighbours.setdefault(link.dst, {})[link.src] = link.strength
        every = sorted({m for t in targets for m in neighbours.get(t, {})} | set(targets))
        live = reads.records(every)
        versions = reads.heads([m for m in every if m not in fresh])
        bases = {m: _base(v) for m, v in versions.items()}
        bases.update(fresh)
        currents = {m: v[-1] for m, v in versions.items()}
        currents.update(fresh)
        shaped: dict[str, tuple[Note, dict[str, Note]]] = {}
        for target in targets:
            record, base = live.get(target), bases.get(target)
            if record is None or base is None or record.valid_to is not None:
                continue
            shaped[target] = (base, {m: bases[m] for m in neighbours.get(target, {})  # a flagged memory shapes none
                                     if m in bases and m in live and not live[m].metadata.get("flagged")})
        by_model = self._model_evolution(shaped, live)
        out = []
        for target, (base, around) in shaped.items():
            if target in by_model:
                draft = by_model[target]
                draft = None if policy.same_content(base, draft) else draft
                causes = tuple(sorted(around)) if draft is not None else ()  # every neighbour it was shown
            else:
                draft = policy.evolve(base, around)
                causes = policy.causes_of(draft, base, around) if draft is not None else ()
            if draft is None:
                if target not in rederive or not currents[target].causes:
                    continue
                draft, reason = Draft(base.keywords, base.tags, base.context, base.made_by), policy.REDERIVED
            elif target in joined and target not in rederive:
                reason = policy.EVOLVED.format(", ".join(sorted(joined[target])))
            else:
                reason = policy.REDERIVED
            if policy.same_content(currents.get(target), draft) and currents[target].causes == causes:
                continue
            out.append(Evolution(target, draft, causes, reason))
        return out

    def _model_evolution(self, shaped: dict[str, tuple[Note, dict[str, Note]]],
                         live: dict[str, Record]) -> dict[str, Draft]:
        """Evolved notes written by the note writer's model, when it has one (an LLM), for
        the memories with neighbours; {} offline or when the model fails. No flagged memory,
        nor its note, is shown to the model."""
        evolve = getattr(self._writer, "evolve", None)
        if not callable(evolve):
            return {}
        items = []
        for target, (base, around) in shaped.items():
            trusted = {m: n for m, n in around.items() if not live[m].metadata.get("flagged")}
            if trusted and not live[target].metadata.get("flagged") and trusted == around:
                items.append((base, trusted))
        if not items:
            return {}
        try:
            return evolve(items)
        except ProviderError as exc:
            log.warning("note evolution fell back to offline: %s", exc)
            return {}

    def _now(self) -> str:
        return format_ts(self._clock.now())


class _Reads:
    """One round's reads of a user's memories and note heads, each memory read once: the
    round's memories, their candidates and their neighbourhoods overlap."""

    def __init__(self, store: Store, user: str) -> None:
        self._store = store
        self.user = user
        self._records: dict[str, Record | None] = {}  # None: asked for, not there
        self._heads: dict[str, list[Note] | None] = {}

    def saw(self, records: Iterable[Record]) -> None:
        """Records of the user read otherwise (by rowid)."""
        self._records.update({r.id: r for r in records if r.user_id == self.user})

    def records(self, ids: Sequence[str]) -> dict[str, Record]:
        missing = [i for i in dict.fromkeys(ids) if i not in self._records]
        if missing:
            found = {r.id: r for r in self._store.records_by_ids(missing, self.user)}
            self._records.update({i: found.get(i) for i in missing})
        return {i: r for i in ids if (r := self._records.get(i)) is not None}

    def heads(self, ids: Sequence[str]) -> dict[str, list[Note]]:
        missing = [i for i in dict.fromkeys(ids) if i not in self._heads]
        if missing:
            found = self._store.note_heads(self.user, missing)
            self._heads.update({i: found.get(i) for i in missing})
        return {i: v for i in ids if (v := self._heads.get(i)) is not None}


def _dense_of(rowids: dict[str, dict[int, float]], memory_id: str) -> dict[int, float]:
    return {r: s for r, s in rowids[memory_id].items() if s}


def _derivation(a: Record, b: Record) -> bool:
    """A turn and a memory derived from it: already linked by `derived_from`."""
    return (a.kind == "turn") != (b.kind == "turn") and bool(set(a.sources) & set(b.sources))


def _base(versions: list[Note]) -> Note:
    """A note as its memory alone made it: its latest version that no neighbour shaped."""
    return next((v for v in reversed(versions) if not v.causes), versions[-1])


def _as_note(memory_id: str, draft: Draft) -> Note:
    return Note(memory_id, 0, draft.keywords, draft.tags, draft.context, draft.made_by)


def _one_per_pair(relations: list[Relation]) -> list[Relation]:
    """One link per pair of memories (the stronger, when both found each other)."""
    best: dict[frozenset[str], Relation] = {}
    for relation in relations:
        key = frozenset((relation.src, relation.dst))
        if key not in best or relation.strength > best[key].strength:
            best[key] = relation
    return sorted(best.values(), key=lambda r: (r.src, r.dst))
