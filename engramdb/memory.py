"""`Memory`: the public API. It validates, embeds, and hands typed work to the store."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np

from . import cube
from .activation import follow as activation_states
from .changes import DELETED, DISTILLED, FORGOTTEN, RESET, UPDATED, Change, Changes
from .clock import Clock, SystemClock, format_ts, normalize_ts, parse_ts
from .distill import Distiller, derived_mention
from . import guard
from .lifecycle.graph_lane import GraphLane
from .lifecycle.notes_lane import NotesLane
from .lifecycle.runner import shared_extractors
from .living.llm_notes import make_note_writer
from .living.notes import REVERTED, Draft, Evolution, Note, NotesBatch, Related, exported_for, renamed
from .living.reader import profile_cost, profile_share, read_profile
from .living.topics import TopicLane
from .lifecycle.vitals_lane import Decay, VitalsLane
from .lifecycle.scheduler import Scheduler, schedules
from .living.vitals import ACTIVE, ARCHIVED, RECALLED_BY_ID, Vitals, reranked
from .extract import make_extractor
from .extract.isolated import IsolatedExtractor
from .config import Config
from .errors import ConfigError, InvalidInputError, NotFoundError, PermissionDeniedError, UsageError
from .ids import new_id
from .living import thinking
from .living.reflection import Reflector, reflection_model
from .keys import index_text
from .messages import read_batch
from .providers import Embedder, make_embedder
from .graph import graph_ranking, phrase_key, words
from .query import parts
from .retrieval import (FEEDBACK_SEEDS, MIN_BUDGET_TOKENS, assemble, estimate_tokens, feedback_vector, first_ranking,
                        fuse, without_echoes)
from .speakers import mentioned_names, without_names
from .stores import ExportedRecord, NewRecord, Store, open_store
from .stores.base import REFLECT
from .stores.filters import FLAGGED, Condition, current, unarchived, valid_at
from .stores.filters import parse as parse_filters
from .types import (MAX_ID_CHARS, AddResult, Hit, Profile, Recall, Record, Scope, ScoredId, Version, check_strings,
                    check_text)

DEFAULT_EXTRACTOR = "offline"  # Config.extractor None means this
QUERY_CACHE = 256
REEMBED_BATCH = 256
LINK_SEEDS = 10  # search follows the links of this many of its best candidates
KEYWORD_THREADS = 16  # keyword searches running beside dense ones, for every Memory of the process

_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): made on first search, anew after a fork
_pool_lock = threading.Lock()


def _keyword_pool() -> ThreadPoolExecutor:
    """The process's threads for keyword searches (one pool however many Memory
    objects, e.g. a server's tenants, share the process)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=KEYWORD_THREADS, thread_name_prefix="engram-keywords"))
        return _pool[1]


class Memory:
    """Long-term memory for agents: add conversations, search them, keep them.

    >>> mem = Memory("sqlite:///./engram.db")
    >>> mem.add("I moved to Berlin last May", user_id="alice")
    >>> mem.search("where does alice live?", user_id="alice")
    """

    def __init__(
        self,
        store: str | os.PathLike | None = None,
        *,
        config: Config | None = None,
        embedder: Embedder | None = None,
        clock: Clock | None = None,
        reembed: bool = False,
        tenant: str | None = None,
        read_only: bool = False,
    ) -> None:
        if config is not None and not isinstance(config, Config):
            raise ConfigError(f"config must be an engramdb.Config, got {type(config).__name__}")
        self.config = config or Config()
        if store is not None and not isinstance(store, (str, os.PathLike)):
            raise ConfigError(f"store must be a URL or a path, got {type(store).__name__}")
        if read_only and reembed:
            raise ConfigError("a read-only Memory cannot re-embed its store; open it with read_only=False")
        self.tenant = tenant
        self.read_only = read_only  # opened only to read: never created, migrated or written
        self._store: Store = open_store(store if store is not None else self.config.store, self.config, tenant=tenant,
                                        read_only=read_only)
        self._embedder = embedder
        self._owns_embedder = embedder is None
        self._clock = clock or SystemClock()
        self._reembed = reembed
        self._ready = False
        self._ready_lock = threading.Lock()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_lock = threading.Lock()
        # user -> the speakers' names of its last search's candidates: a query that names
        # one is embedded without it from the start (Memory._dense_query; checked after).
        self._speakers: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._distiller: Distiller | None = None
        self._notes_lane: NotesLane | None = None
        self._graph_lane: GraphLane | None = None
        self._topic_lane: TopicLane | None = None
        self._reflector: Reflector | None = None
        self._vitals_lane: VitalsLane | None = None
        self._changes = Changes()
        self._states: activation_states.StateCache | None = None
        self._scheduler = Scheduler(schedules(self.config), now=lambda: format_ts(self._clock.now()),
                                    log_size=self.config.job_log)
        if self.config.decay and not read_only:
            self._vitals().start()  # the decay sweep runs in the background from now on
        if not read_only and self._extractor_name() != "none" and self._store.job_stats()["pending"]:
            self._distill().wake()  # jobs left by a crash or a dead LLM resume
        if self._notes_on() and (work := self._store.note_work(1)) is not None and work.user_id:
            self._notes().wake()  # notes a closed process left to make
        if self._graph_on() and self._graph_backlog():
            self._graph().wake()  # turns distilled before the entity graph (or with it off) get their edges

    def _extractor_name(self) -> str:
        return self.config.extractor or DEFAULT_EXTRACTOR

    def _extractor_key(self) -> tuple:
        """Memories whose configs give the same key share one extractor (runner.SharedExtractors)."""
        return (self._extractor_name(), self.config.llm_base_url, self.config.llm_api_key, self.config.llm_timeout_s,
                self.config.extract_processes)

    def _acquire_extractor(self) -> tuple[Any, Callable[[], None]]:
        """The process's shared extractor of this config, and how to let go of it."""
        name, key = self._extractor_name(), self._extractor_key()
        shared = shared_extractors()
        extractor = shared.acquire(key, lambda: IsolatedExtractor(
            name, self.config.extract_processes) if name == "offline" else make_extractor(
            name, base_url=self.config.llm_base_url, api_key=self.config.llm_api_key,
            timeout_s=self.config.llm_timeout_s))
        return extractor, lambda: shared.release(key)

    def _graph_on(self) -> bool:
        """The entity graph's backfill runs while the graph is on and distillation can run."""
        return self.config.graph and self._extractor_name() != "none" and not self.read_only

    def _graph_backlog(self) -> bool:
        """Whether turns wait for the graph backfill; when none does, the watermark moves
        here (no extractor is taken for that)."""
        work = self._store.graph_work(1)
        if work is not None and not work.user_id:
            self._store.write_backfill("", (), work.mark)
            return False
        return work is not None

    def _graph(self) -> GraphLane:
        """The graph backfill's lane (lifecycle/graph_lane.py), made on first use."""
        with self._ready_lock:
            if self._graph_lane is None:
                extractor, release = self._acquire_extractor()
                self._graph_lane = GraphLane(self._store, extractor, self._clock, release=release,
                                             scheduler=self._scheduler)
            return self._graph_lane

    def _distill(self) -> Distiller:
        """The background distillation worker, made on first use."""
        with self._ready_lock:
            if self._distiller is None:
                extractor, release = self._acquire_extractor()
                self._reflector = Reflector.from_config(self._store, self.config,
                                                        lambda texts: self.embedder.embed(texts), self._clock)
                self._distiller = Distiller(self._store, extractor, lambda texts: self.embedder.embed(texts),
                                            self._clock, release=release,
                                            lease=timedelta(seconds=self.config.job_lease_s),
                                            handlers={REFLECT: self._reflector.run_job} if self._reflector else None,
                                            scheduler=self._scheduler, graph=self.config.graph,
                                            done=lambda job: self._changed(job.scope.user_id, DISTILLED))
            return self._distiller

    def _notes_on(self) -> bool:
        """Notes and links are made in the background while distillation runs."""
        return self.config.notes and self._extractor_name() != "none" and not self.read_only

    def _notes(self) -> NotesLane:
        """The notes lane (lifecycle/notes_lane.py), made on first use."""
        with self._ready_lock:
            if self._notes_lane is None:
                writer = make_note_writer(self._extractor_name(), base_url=self.config.llm_base_url,
                                          api_key=self.config.llm_api_key, timeout_s=self.config.llm_timeout_s)
                close = getattr(writer, "close", None)
                self._notes_lane = NotesLane(self._store, self._clock, writer=writer,
                                             release=close if callable(close) else None, scheduler=self._scheduler)
            return self._notes_lane

    def _touch_topics(self, user_id: str, agent_id: str | None) -> None:
        """With `Config(topics=True)`, the scope's topic memories are built again in the
        background (living/topics.py) once its distillation is done."""
        if not self.config.topics or self.read_only:
            return
        with self._ready_lock:
            if self._topic_lane is None:
                self._topic_lane = TopicLane(self._store, lambda texts: self.embedder.embed(texts), self._clock,
                                             min_sessions=self.config.topic_min_sessions,
                                             max_topics=self.config.topic_max,
                                             distilled=self._extractor_name() != "none",
                                             scheduler=self._scheduler, at_flush=self.config.topics_at_flush)
        self._topic_lane.touch(user_id, agent_id)
    def _vitals(self) -> VitalsLane:
        """The vitals lane (recalls written in the background, the decay sweep), made on first use."""
        with self._ready_lock:
            if self._vitals_lane is None:
                c = self.config
                decay = Decay.of(c.decay_tau_days, c.decay_threshold, c.decay_interval_s) if c.decay else None
                self._vitals_lane = VitalsLane(self._store, self._clock, decay=decay, scheduler=self._scheduler)
            return self._vitals_lane

    def _recalled(self, user_id: str, hits: list[Hit], query: str | None) -> None:
        """Note what a read returned (written later, off the read path)."""
        if self.config.vitals and not self.read_only:
            self._vitals().note(user_id, [h.id for h in hits], query)

    # -- set-up ------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self._store

    @property
    def changes(self) -> Changes:
        """The hub told of every erasure, update, forget, reset and distillation job
        (engramdb/changes.py): `mem.changes.subscribe(listener)`."""
        return self._changes

    @property
    def activation_states(self) -> activation_states.StateCache:
        """The local model states kept for this store (engramdb/activation/cache.py),
        beside it unless `Config.activation_dir` says where; nothing is created until a
        state is put."""
        with self._ready_lock:
            if self._states is None:
                self._states = activation_states.cache_for(self.config, self._store)
            return self._states

    def _changed(self, user_id: str | None, cause: str, *, whole: bool = False) -> None:
        """After a change to a user's memories (None: every user's): the activation
        states built from a memory that is no longer current are deleted (the derivation
        rule: before the erasure returns), then the listeners are told."""
        with self._query_lock:
            if user_id is None:
                self._speakers.clear()
            else:
                self._speakers.pop(user_id, None)
        if not self.read_only:
            activation_states.follow(self.activation_states, self._store, tenant=self.tenant, user_id=user_id,
                                     whole=whole)
        self._changes.notify(Change(user_id, cause))

    @property
    def embedder(self) -> Embedder:
        """The embedder, loaded on first use and checked against the store's."""
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    self._prepare()
        assert self._embedder is not None
        return self._embedder

    def _prepare(self) -> None:
        if self._embedder is None:
            self._embedder = make_embedder(self.config)
        name, dim = self._embedder.name, self._embedder.dim
        recorded = self._store.embedder_name()
        if recorded is None:
            if not self.read_only:
                self._store.set_embedder_name(name, dim)
        elif recorded != (name, dim):
            if not self._reembed:
                raise ConfigError(
                    f"this store was embedded with {recorded[0]} ({recorded[1]} dims), not {name}; "
                    "open it with Memory(..., reembed=True) (or `engram reembed`) to re-embed every memory"
                )
            self._store.clear_vectors()
            self._store.set_embedder_name(name, dim)
        if not self.read_only:
            self._backfill_vectors()
        self._ready = True

    def _backfill_vectors(self) -> None:
        """Embed any record without a vector (after a migration or an embedder change)."""
        assert self._embedder is not None
        while True:
            missing = self._store.missing_vectors(REEMBED_BATCH)
            if not missing:
                return
            rowids = [rowid for rowid, _ in missing]
            self._store.set_vectors(rowids, self._embedder.embed([text for _, text in missing]))

    # -- writes ------------------------------------------------------------------------

    def add(
        self,
        messages: Any,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        skip_empty: bool = False,
    ) -> AddResult:
        """Store every turn; each is searchable when this returns. The whole batch is
        validated first: one bad message stores nothing. With `skip_empty`, turns whose
        content is empty or only whitespace are left out instead, counted in
        `AddResult.skipped`."""
        self._check_writable("add")
        scope = Scope(user_id, agent_id, session_id)
        meta = _check_metadata(metadata)
        now = self._clock.now()
        if not isinstance(skip_empty, bool):
            raise InvalidInputError(f"skip_empty must be True or False, got {type(skip_empty).__name__}")
        valid = read_batch(messages, now=now, max_chars=self.config.max_message_chars,
                           max_messages=self.config.max_messages_per_add, skip_empty=skip_empty)
        batch = valid.messages
        if not batch:
            return AddResult([], skipped=valid.skipped)
        vectors = self.embedder.embed([index_text(m.content, m.name) for m in batch])
        recorded_at = format_ts(now)
        records = []
        for message in batch:
            rid = new_id()
            records.append(
                NewRecord(
                    id=rid, scope=scope, kind="turn", text=message.content, created_at=message.timestamp,
                    recorded_at=recorded_at, role=message.role, name=message.name,
                    sources=[message.source_id or rid], metadata=dict(meta),
                )
            )
        records = flag_injections(records)
        distil = self._extractor_name() != "none"
        stored = self._store.insert(records, vectors, actor=agent_id or user_id, enqueue=distil)
        if distil and reflection_model(self.config) is not None:  # living/reflection.py: one call per N turns
            self._store.gather_job(Scope(user_id, agent_id), [r.id for r in stored], kind=REFLECT, at=recorded_at,
                                   every=self.config.reflect_every_turns)
        if distil or self.config.topics:  # the scheduler decides when their work runs (lifecycle/scheduler.py)
            self._scheduler.note(user_id, len(stored))
        if distil:
            self._distill().wake(requested=False)
        if self._notes_on():
            self._notes().wake()
        self._touch_topics(user_id, agent_id)
        return AddResult(stored, skipped=valid.skipped)

    def think(self, text: str, *, user_id: str, sources: Any, agent_id: str | None = None,
              session_id: str | None = None, metadata: Mapping[str, Any] | None = None) -> Record:
        """Store a conclusion an agent reached (a memory of kind "thought"), resting on
        `sources`: ids of the user's current memories or turns. It is searchable at once,
        merges with a current thought that says the same (which keeps every source), is
        retired when a source stops being current and erased with an erased source
        (living/thoughts.py). Returns the thought as stored."""
        self._check_writable("think")
        if not self.config.thoughts:
            raise ConfigError("thoughts are switched off (Config(thoughts=False))")
        scope = Scope(user_id, agent_id, session_id)
        text, ids = thinking.check_thought(text, sources, max_chars=self.config.max_message_chars)
        meta = _check_metadata(metadata)
        return thinking.think(self._store, self.embedder.embed, text, scope, ids, at=format_ts(self._clock.now()),
                              actor=agent_id or user_id, threshold=self.config.thought_merge_threshold, metadata=meta)

    def update(self, id: str, text: str, *, user_id: str | None = None, metadata: Mapping[str, Any] | None = None,
               reason: str | None = None) -> Record:
        """Replace a memory's text (the old text stays in history)."""
        self._check_writable("update")
        current = self._find(id, user_id)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("text must be a non-empty string")
        if len(text) > self.config.max_message_chars:
            raise InvalidInputError(f"text has {len(text)} characters; the limit is {self.config.max_message_chars}")
        if "\x00" in text:
            raise InvalidInputError("text contains a NUL character")
        check_text("text", text)
        meta = None if metadata is None else _check_metadata(metadata)
        vector = self.embedder.embed([index_text(text, current.name)])[0]
        updated = self._store.update(
            current.id, text, vector, at=format_ts(self._clock.now()), actor=user_id or current.user_id,
            reason=reason, metadata=meta,
        )
        self._changed(updated.user_id, UPDATED)
        if self.config.graph and updated.kind != "turn":
            self._regraph(updated)
        if self._notes_on() or self._store.notes(updated.user_id, [updated.id]):  # its note is made again
            self._store.queue_notes(updated.user_id, [updated.id], reason="text updated",
                                    at=format_ts(self._clock.now()))
        self._rederive()
        self._touch_topics(current.user_id, current.agent_id)
        return updated

    def _regraph(self, memory: Record) -> None:
        """A derived memory's entity-graph edges after its text changed (the store drops
        those read from the old text): the phrases of its turns that the new text says, as
        distillation gives them (distill.graph_mentions). Written only while the memory
        still holds this text."""
        turns = [dst for src, kind, dst in self._store.memory_links(memory.id)
                 if src == memory.id and kind == "derived_from"]
        said = self._store.mentions(memory.user_id, turns) if turns else {}
        self._store.write_mentions(memory.user_id, [derived_mention(memory.id, memory.text, turns, said)])

    def delete(self, id: str, *, user_id: str | None = None) -> None:
        """Erase a memory: its text leaves the store, its indexes and its history."""
        self._check_writable("delete")
        current = self._find(id, user_id)
        self._store.delete(current.id, at=format_ts(self._clock.now()), actor=user_id or current.user_id)
        self._changed(current.user_id, DELETED)
        self._rederive()
        self._touch_topics(current.user_id, current.agent_id)

    def forget(self, *, user_id: str, agent_id: str | None = None, session_id: str | None = None) -> int:
        """Erase a whole scope. Returns how many memories were erased."""
        self._check_writable("forget")
        erased = self._store.forget(Scope(user_id, agent_id, session_id))
        self._changed(user_id, FORGOTTEN, whole=agent_id is None and session_id is None)
        if agent_id is not None or session_id is not None:
            self._rederive()
            self._touch_topics(user_id, agent_id)
        return erased

    def _rederive(self) -> None:
        """An erasure or an update may have queued what its derived memories' other
        sources say, to distil again (lifecycle/): the worker takes it up."""
        if self._extractor_name() != "none" and not self.read_only:
            self._distill().wake()
        if self._notes_on():
            self._notes().wake()

    def reset(self, *, confirm: bool = False) -> None:
        """Erase every memory of every user. Refused unless confirm=True."""
        if confirm is not True:
            raise UsageError("reset() erases every memory of every user; call reset(confirm=True) to do it")
        self._check_writable("reset")
        self._store.reset()
        self._changed(None, RESET, whole=True)

    # -- reads -------------------------------------------------------------------------

    def get(self, id: str, *, user_id: str | None = None) -> Record:
        """One memory by id. Fetching an archived memory by its id recalls it: it is
        active again (history: 'revive', recalled by id)."""
        found = self._find(id, user_id)
        if found.state == ARCHIVED and not self.read_only:
            at = format_ts(self._clock.now())
            if self._store.set_state([(found.id, RECALLED_BY_ID)], ACTIVE, at=at, actor=user_id):
                self._store.reinforce({found.id: 1}, at=at, how="recall")
            found = self._find(id, user_id)
        return found

    def _find(self, id: str, user_id: str | None) -> Record:
        _check_memory_id(id)
        found = self._store.get(id, user_id=user_id)
        if found is None:
            raise NotFoundError(f"no memory with id {id!r}")
        return found

    def list(
        self,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        filters: Mapping[str, Any] | None = None,
        as_of: str | None = None,
        include_retired: bool = False,
        include_archived: bool = False,
    ) -> list[Record]:
        """Memories of a scope in time order, a page at a time: the current ones, with
        `as_of` those true then, with `include_retired` also the superseded and retracted,
        with `include_archived` also those decay archived (`Record.state`)."""
        scope = Scope(user_id, agent_id, session_id)
        _check_int("limit", limit, 1, self.config.max_limit)
        _check_int("offset", offset, 0, 2**62)
        _check_bool("include_archived", include_archived)
        conditions = _unarchived(_in_time(_filters(filters), as_of, include_retired), include_archived)
        return self._store.list(scope, conditions, limit, offset)

    def history(self, id: str, *, user_id: str | None = None) -> list[Version]:
        """Every version of a memory, oldest first; a deleted one keeps only hashes."""
        _check_memory_id(id)
        if user_id is not None and self._store.history_owner(id) not in (None, user_id):
            raise NotFoundError(f"no memory with id {id!r}")
        versions = self._store.history(id)
        if not versions:
            raise NotFoundError(f"no memory with id {id!r}")
        return versions

    def note(self, id: str, *, user_id: str | None = None, version: int | None = None) -> Note:
        """A memory's note: keywords, tags and a one-line context (made in the background;
        `flush()` waits for them), at its current version or at `version`."""
        record = self.get(id, user_id=user_id)
        versions = self._store.notes(record.user_id, [record.id]).get(record.id, [])
        if version is not None:
            _check_int("version", version, 1, 2**31)
            versions = [v for v in versions if v.version == version]
        if not versions:
            raise NotFoundError(f"memory {id!r} has no note" + (f" version {version}" if version else " yet"))
        return versions[-1]

    def revert_note(self, id: str, version: int, *, user_id: str | None = None) -> Note:
        """Restore an earlier version of a memory's note, as a new version (in history)."""
        self._check_writable("revert_note")
        old = self.note(id, user_id=user_id, version=version)
        record = self.get(id, user_id=user_id)
        draft = Draft(old.keywords, old.tags, old.context, old.made_by)
        self._store.write_notes(record.user_id, NotesBatch(evolved=[Evolution(record.id, draft, old.causes,
                                                                              REVERTED.format(version))]),
                                at=format_ts(self._clock.now()), actor=user_id or record.user_id)
        return self.note(id, user_id=user_id)

    def related(self, id: str, *, user_id: str | None = None, depth: int = 1, limit: int = 10,
                min_strength: float = 0.0, include_retired: bool = False) -> list[Related]:
        """The memories `relates_to` links reach from this one, up to `depth` links away,
        best first (the product of the strengths on the path), each with the reason and
        strength of the link that reached it."""
        start = self.get(id, user_id=user_id)
        _check_int("depth", depth, 1, 5)
        _check_int("limit", limit, 1, self.config.max_limit)
        if isinstance(min_strength, bool) or not isinstance(min_strength, (int, float)) or not 0 <= min_strength <= 1:
            raise InvalidInputError(f"min_strength must be a number between 0 and 1, got {min_strength!r}")
        best: dict[str, tuple[float, int, str, str, float]] = {}  # id -> (score, hops, via, reason, strength)
        scores, frontier = {start.id: 1.0}, [start.id]
        for hops in range(1, depth + 1):
            reached: dict[str, tuple[float, int, str, str, float]] = {}
            for relation in self._store.relations(start.user_id, frontier):
                if relation.strength < min_strength:
                    continue
                for via, other in ((relation.src, relation.dst), (relation.dst, relation.src)):
                    if via not in frontier or other == start.id or other in best:
                        continue
                    score = scores[via] * relation.strength
                    if other not in reached or score > reached[other][0]:
                        reached[other] = (score, hops, via, relation.reason, relation.strength)
            best.update(reached)
            scores.update({m: v[0] for m, v in reached.items()})
            frontier = sorted(reached)
            if not frontier:
                break
        found = {r.id: r for r in self._store.records_by_ids(sorted(best), start.user_id)
                 if include_retired or r.valid_to is None}
        ordered = sorted((m for m in best if m in found), key=lambda m: (-best[m][0], best[m][1], m))[:limit]
        return [Related(m, found[m].text, found[m].kind, best[m][3], best[m][4], best[m][1], best[m][2], best[m][0],
                        found[m].session_id, found[m].created_at, found[m].sources) for m in ordered]

    def search(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 10,
        filters: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        as_of: str | None = None,
        include_retired: bool = False,
        include_archived: bool = False,
    ) -> list[Hit]:
        """The memories that best match `query`: keyword (BM25) and dense candidates, fused
        by RRF with their sessions' ranks, the speakers and the dates the query names
        (retrieval.fuse). Each hit counts as a recall of it (vitals, written later);
        archived memories are left out unless `include_archived`."""
        hits = self._search(query, user_id=user_id, limit=limit, filters=filters, session_id=session_id,
                            agent_id=agent_id, as_of=as_of, include_retired=include_retired,
                            include_archived=include_archived)
        self._recalled(user_id, hits, query)
        return hits

    def _search(self, query: str, *, user_id: str, limit: int, filters: Mapping[str, Any] | None,
                session_id: str | None, agent_id: str | None, as_of: str | None, include_retired: bool = False,
                include_archived: bool = False) -> list[Hit]:
        scope = Scope(user_id, agent_id, session_id)
        _check_query(query, self.config.max_query_chars)
        _check_int("limit", limit, 1, self.config.max_limit)
        _check_bool("include_archived", include_archived)
        conditions = self._trusted(_unarchived(_searchable(_in_time(_filters(filters), as_of, include_retired)),
                                               include_archived))
        depth = max(self.config.candidates, 2 * limit)
        # The keyword search needs no embedding: it runs in another thread while this
        # one embeds the query and searches vectors (both wait on the model or the store).
        pending = _keyword_pool().submit(self._store.keyword_search, scope, query, conditions, depth)
        dense_query = query  # what the dense list is searched with
        if self.config.dense_without_speakers:
            with self._query_lock:
                known = self._speakers.get(user_id, frozenset())
            dense_query = _dense_query(query, known)
        try:
            dense = self._store.vector_search(scope, self._embed_query(dense_query), conditions, depth)
        except BaseException:
            wait([pending])  # leave no keyword search behind, e.g. queued for a connection to a dead server
            raise
        keyword = pending.result()
        asked = [(part, self._store.vector_search(scope, self._embed_query(part), conditions, depth),
                  self._store.keyword_search(scope, part, conditions, depth))
                 for part in (parts(query) if self.config.query_parts else [])]
        found = [*dense, *keyword, *(item for _, d, w in asked for item in [*d, *w])]
        records = self._store.by_rowids(list({item.rowid: None for item in found}), scope)
        if self.config.dense_without_speakers:
            dense_query, dense = self._dense_without_speakers(query, dense_query, scope, conditions, depth, dense,
                                                              records)
        feedback = self._feedback(query, dense_query, scope, conditions, depth, dense, keyword, records) \
            if self.config.dense_feedback else []
        follow = self._follower(user_id, records) if self.config.link_search else None
        graph = self._graph_walk(query, user_id, records) if self.config.graph and self.config.graph_search else None
        ranked_parts = [fuse(part, d, w, records, k=self.config.rrf_k) for part, d, w in asked]
        fused = without_echoes(fuse(query, dense, keyword, records, k=self.config.rrf_k, follow=follow, graph=graph,
                                    parts=ranked_parts, anchors=self.config.query_anchors, feedback=feedback),
                             records)
        scored = [(item.rowid, item.score) for item in fused if item.rowid in records]
        if self.config.utility_weight or self.config.retention_weight:
            scored = self._by_use(scored[:max(2 * limit, 50)], records)
        return [_hit(records[rowid], score) for rowid, score in scored[:limit]]

    def _dense_without_speakers(self, query: str, searched: str, scope: Scope, conditions: list, depth: int,
                                dense: list[ScoredId], records: dict[int, Record]) -> tuple[str, list[ScoredId]]:
        """The dense list of `query` less the names of its candidates' speakers it
        mentions (speakers.py): `dense` when it was `searched` with that already (the
        names the last search of the scope's user met), else searched again (`records`
        gains the rows it finds). Returns the query searched and its list."""
        names = frozenset(r.name for r in records.values() if r.name)
        with self._query_lock:
            self._speakers[scope.user_id] = names
            self._speakers.move_to_end(scope.user_id)
            while len(self._speakers) > QUERY_CACHE:
                self._speakers.popitem(last=False)
        wanted = _dense_query(query, names)
        if wanted == searched:
            return searched, dense
        found = self._store.vector_search(scope, self._embed_query(wanted), conditions, depth)
        self._read_missing(found, scope, records)
        return wanted, found

    def _feedback(self, query: str, dense_query: str, scope: Scope, conditions: list, depth: int,
                  dense: list[ScoredId], keyword: list[ScoredId], records: dict[int, Record]) -> list[ScoredId]:
        """Dense pseudo-relevance feedback: the vector of `dense_query` moved towards the
        vectors of its best candidates by the dense and keyword lists (retrieval.first_ranking,
        feedback_vector) searched once more; `records` gains the rows it finds. Empty when
        the best candidates have no vectors."""
        best = first_ranking(query, dense, keyword, records, k=self.config.rrf_k)[:FEEDBACK_SEEDS]
        ids = [records[item.rowid].id for item in best if item.rowid in records]
        vectors = self._store.note_vectors(scope.user_id, ids)
        moved = feedback_vector(self._embed_query(dense_query), [vectors[i] for i in ids if i in vectors])
        if moved is None:
            return []
        found = self._store.vector_search(scope, moved, conditions, depth)
        self._read_missing(found, scope, records)
        return found

    def _read_missing(self, found: list[ScoredId], scope: Scope, records: dict[int, Record]) -> None:
        missing = [item.rowid for item in found if item.rowid not in records]
        if missing:
            records.update(self._store.by_rowids(missing, scope))

    def _by_use(self, scored: list[tuple[int, float]], records: dict[int, Record]) -> list[tuple[int, float]]:
        """Scores adjusted by utility and retention (Config.utility_weight, retention_weight)."""
        vitals = self._store.vitals([records[rowid].id for rowid, _ in scored])
        return reranked(scored, {rowid: vitals[r.id] for rowid, r in records.items() if r.id in vitals},
                        now=self._clock.now(), recorded_at={rowid: r.recorded_at for rowid, r in records.items()},
                        tau_s=self.config.decay_tau_days * 86_400, utility_weight=self.config.utility_weight,
                        retention_weight=self.config.retention_weight)

    def _follower(self, user_id: str, records: Mapping[int, Record]):
        """The ranked list search gets by following `relates_to` links from its best
        candidates to others of the same candidate pool (so every filter still holds):
        each of the best candidates in its fused order, each followed by the candidates
        it links to, strongest first (a linked memory is ranked next to what links it)."""
        def follow(fused: list) -> list[ScoredId]:
            seeds = [records[i.rowid].id for i in fused[:LINK_SEEDS] if i.rowid in records]
            pool = {r.id: rowid for rowid, r in records.items()}
            linked: dict[str, list[tuple[float, str]]] = {}
            for relation in self._store.relations(user_id, seeds):
                for seed, other in ((relation.src, relation.dst), (relation.dst, relation.src)):
                    if other in pool:
                        linked.setdefault(seed, []).append((relation.strength, other))
            order: dict[str, None] = {}
            for seed in seeds:
                order.setdefault(seed, None)
                for _, other in sorted(linked.get(seed, []), key=lambda p: (-p[0], p[1])):
                    order.setdefault(other, None)
            return [ScoredId(pool[m], float(len(order) - i)) for i, m in enumerate(order)]

        return follow

    def _graph_walk(self, query: str, user_id: str, records: Mapping[int, Record]):
        """The ranked list search gets from the entity graph of its candidates (graph.py):
        Personalized PageRank seeded from the best fused candidates."""
        def walk(fused: list) -> list[ScoredId]:
            said = self._store.mentions(user_id, [r.id for r in records.values()])
            edges = {rowid: said.get(r.id, ()) for rowid, r in records.items()}
            names = frozenset(k for name in {r.name for r in records.values() if r.name} if (k := phrase_key(name)))
            return graph_ranking(query, fused, edges, ignore=names,
                                 sources={rowid: r.sources for rowid, r in records.items()})

        return walk

    def context(self, query: str, *, user_id: str, budget_tokens: int = 1500, session_id: str | None = None,
                agent_id: str | None = None, filters: Mapping[str, Any] | None = None,
                as_of: str | None = None, include_profile: bool = False) -> str:
        """A prompt block of what matters for `query`, within `budget_tokens` (the text
        of `recall()`)."""
        return self.recall(query, user_id=user_id, budget_tokens=budget_tokens, session_id=session_id,
                           agent_id=agent_id, filters=filters, as_of=as_of, include_profile=include_profile).text

    def recall(self, query: str, *, user_id: str, budget_tokens: int = 1500, session_id: str | None = None,
               agent_id: str | None = None, filters: Mapping[str, Any] | None = None,
               as_of: str | None = None, include_profile: bool = False) -> Recall:
        """What matters for `query` within `budget_tokens`, as a prompt block and the
        memories in it. When the whole scope fits the budget, all of it comes back in
        time order (`complete`): on a small history full context beats retrieval. With
        `include_profile`, the block opens with the scope's profile (`profile()`), paid
        from the same budget (at most `Config.profile_budget_tokens` of it)."""
        _check_int("budget_tokens", budget_tokens, MIN_BUDGET_TOKENS, 10_000_000)
        _check_query(query, self.config.max_query_chars)
        if not isinstance(include_profile, bool):
            raise InvalidInputError(f"include_profile must be True or False, got {type(include_profile).__name__}")
        if include_profile:
            return self._with_profile(query, user_id=user_id, budget_tokens=budget_tokens, session_id=session_id,
                                      agent_id=agent_id, filters=filters, as_of=as_of)
        scope = Scope(user_id, agent_id, session_id)
        conditions = self._trusted(_unarchived(_in_time(_filters(filters), as_of), False))
        whole = self._whole_scope(scope, conditions, budget_tokens)
        if whole is not None:
            text, hits, complete = assemble(whole, budget_tokens, query)
            if complete:
                self._recalled(user_id, hits, query)
                return Recall(text, hits, complete=True)
        hits = self._search(
            query, user_id=user_id, limit=min(self.config.max_limit, max(20, budget_tokens // 10)),
            filters=filters, session_id=session_id, agent_id=agent_id, as_of=as_of,
        )
        text, chosen, _ = assemble(hits, budget_tokens, query)
        self._recalled(user_id, chosen, query)  # what the block holds was recalled, not every candidate
        return Recall(text, chosen, complete=False)

    def profile(self, user_id: str, *, agent_id: str | None = None, budget_tokens: int | None = None,
                as_of: str | None = None) -> Profile:
        """The scope's current facts and preferences (and plans still ahead), grouped by
        topic (home, work, family, health, about, tastes, plans, other), the most
        important first within `budget_tokens` (default `Config.profile_budget_tokens`):
        as a prompt block (`text`) and as items with their memory and source ids. With
        `as_of`, the profile as it stood then. Assembled at each call from the memories
        true then, so it states the current truth as soon as `flush()` returns."""
        if not self.config.profile:
            raise UsageError("the profile is off (Config(profile=False))")
        budget = self.config.profile_budget_tokens if budget_tokens is None else budget_tokens
        _check_int("budget_tokens", budget, 1, 10_000_000)
        return read_profile(self._store, Scope(user_id, agent_id), budget_tokens=budget,
                            as_of=None if as_of is None else normalize_ts(as_of, field="as_of"),
                            now=format_ts(self._clock.now()))

    def _with_profile(self, query: str, *, user_id: str, budget_tokens: int, session_id: str | None,
                      agent_id: str | None, filters: Mapping[str, Any] | None, as_of: str | None) -> Recall:
        """The profile first, paid from the budget; then what matters for `query` in what is left."""
        share = profile_share(budget_tokens, self.config.profile_budget_tokens, MIN_BUDGET_TOKENS)
        lead = self.profile(user_id, agent_id=agent_id, budget_tokens=share, as_of=as_of) if share else None
        rest = budget_tokens - (profile_cost(lead.text) if lead is not None and lead.text else 0)
        found = self.recall(query, user_id=user_id, budget_tokens=rest, session_id=session_id, agent_id=agent_id,
                            filters=filters, as_of=as_of)
        if lead is None or not lead.text:
            return replace(found, profile=lead)
        return Recall(lead.text + ("\n" + found.text if found.text else ""), found.hits, found.complete, profile=lead)

    def _whole_scope(self, scope: Scope, conditions: list, budget_tokens: int) -> list[Hit] | None:
        """Every memory of the scope when their text could fit the budget, else None
        (each memory costs at least a token, so a scope with more memories than the
        budget has tokens never fits and is not read)."""
        count = self._store.count(scope)
        if count == 0 or count > budget_tokens:
            return None
        records: list[Record] = []
        used = 0
        while len(records) < count:  # a page at a time: a scope that overflows is not read whole
            page = self._store.list(scope, conditions, WHOLE_SCOPE_PAGE, len(records))
            used += sum(estimate_tokens(r.text) for r in page)
            if used > budget_tokens:
                return None
            records += page
            if len(page) < WHOLE_SCOPE_PAGE:
                break
        seen: set[str] = set()  # a turn added between two pages may shift the second by one
        return [_hit(r, 1.0) for r in records if not (r.id in seen or seen.add(r.id))]

    def _trusted(self, conditions: list) -> list:
        """With `Config(exclude_flagged=True)`, memories flagged as carrying instructions
        are left out of search and recall, unless the caller's filters ask for them."""
        if not self.config.exclude_flagged or any(c.field == FLAGGED for c in conditions):
            return conditions
        return [*conditions, Condition(FLAGGED, "eq", None)]

    def _embed_query(self, query: str) -> np.ndarray:
        with self._query_lock:
            cached = self._query_cache.get(query)
            if cached is not None:
                self._query_cache.move_to_end(query)
                return cached
        vector = self.embedder.embed([query])[0]
        with self._query_lock:
            self._query_cache[query] = vector
            while len(self._query_cache) > QUERY_CACHE:
                self._query_cache.popitem(last=False)
        return vector

    # -- vitals ------------------------------------------------------------------------

    def feedback(self, query: str, *, used: Any = None, unused: Any = None, user_id: str | None = None) -> None:
        """Which memories an answer to `query` actually used (cited) and which it was given
        but did not: each one's utility moves towards +1 (used) or -1 (unused)
        (living/vitals.py); a used memory counts as recalled too. The query is checked,
        not stored. Unknown ids (or another user's) are a NotFoundError, nothing written."""
        self._check_writable("feedback")
        _check_query(query, self.config.max_query_chars)
        used_ids, unused_ids = _id_list("used", used or ()), _id_list("unused", unused or ())
        both = set(used_ids) & set(unused_ids)
        if both:
            raise InvalidInputError(f"memories cannot be both used and unused: {sorted(both)}")
        if user_id is not None:
            Scope(user_id)
        wanted = [*used_ids, *unused_ids]
        found = {r.id for r in self._store.records_by_ids(wanted, user_id)} if user_id is not None else {
            i for i in wanted if self._store.get(i) is not None}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFoundError(f"no memory with id {missing[0]!r}" + (f" (and {len(missing) - 1} more)"
                                                                         if len(missing) > 1 else ""))
        self._store.record_feedback({**{i: True for i in used_ids}, **{i: False for i in unused_ids}})
        if used_ids:
            self._store.reinforce({i: 1 for i in used_ids}, at=format_ts(self._clock.now()), how="recall")

    def vitals(self, id: str, *, user_id: str | None = None) -> Vitals:
        """What use and time did to a memory: strength, last recall, recalls,
        confirmations, utility (living/vitals.py). Recalls noted but not yet written
        (search writes them in the background; flush() waits) are not in it yet."""
        found = self._find(id, user_id)
        return self._store.vitals([found.id]).get(found.id, Vitals(found.id))

    # -- cubes -------------------------------------------------------------------------

    def export(self, path: str | os.PathLike, *, user_id: str, agent_id: str | None = None,
               session_id: str | None = None) -> int:
        """Write one scope as a portable JSONL cube. Returns the record count."""
        scope = Scope(user_id, agent_id, session_id)
        embedder = self._store.embedder_name() or (self.embedder.name, self.embedder.dim)
        return cube.write(
            path, self._store.export(scope), scope=scope, embedder=embedder,
            exported_at=format_ts(self._clock.now()),
            notes=lambda ids: exported_for(self._store.export_derived(scope.user_id), ids),
        )

    def import_(self, path: str | os.PathLike, *, user_id: str | None = None) -> int:
        """Load a cube. Same embedder: vectors are kept; another: texts are re-embedded.
        With `user_id`, every record moves into that user's scope under new ids.
        Records whose id already exists are skipped. Returns how many were written."""
        self._check_writable("import_")
        if user_id is not None:
            Scope(user_id)
        header, items = cube.read(path)
        originals = [item.record.id for item in items]
        if user_id is not None:
            items = [_rescope(item, user_id) for item in items]
        embedder = self.embedder
        same_model = header.get("embedder", {}).get("name") == embedder.name
        vectors = np.zeros((len(items), embedder.dim), dtype=np.float32)
        todo = []
        for index, item in enumerate(items):
            if same_model and item.vector is not None and len(item.vector) == embedder.dim:
                vectors[index] = item.vector
            else:
                todo.append(index)
        for start in range(0, len(todo), REEMBED_BATCH):
            chunk = todo[start:start + REEMBED_BATCH]
            vectors[chunk] = embedder.embed([index_text(items[i].record.text, items[i].record.name) for i in chunk])
        written = self._store.import_records(items, vectors)
        if header.get("notes") and items:
            names = {old: item.record.id for old, item in zip(originals, items)}
            self._store.import_derived(items[0].record.user_id, renamed(header["notes"], names))
        return written

    # -- housekeeping ------------------------------------------------------------------

    def stats(self, *, user_id: str | None = None) -> dict[str, Any]:
        if user_id is not None:
            Scope(user_id)
        return self._store.stats(user_id)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for background work: distillation of the turns added so far (jobs waiting
        out a retry backoff are not waited for), the notes and links of every memory, the
        entity graph's edges of turns distilled without it (the graph backfill), and
        vector-index builds. Every write is
        already durable. True when nothing is left running."""
        start = time.monotonic()
        if not self.read_only and self._extractor_name() != "none" and not self._distill().wait(timeout):
            return False
        if self._vitals_lane is not None:  # recalls noted so far, and a decay sweep that is due
            self._vitals_lane.drain()
            if self.config.decay and self._vitals_lane.sweep_due():
                self._vitals_lane.sweep()
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        if self._topic_lane is not None and not self._topic_lane.wait(left):
            return False
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        if self._notes_on() and not self._notes().wait(left):
            return False
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        if (self._graph_lane is not None or (self._graph_on() and self._graph_backlog())) and \
                not self._graph().wait(left):
            return False
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        return self._store.flush(left)

    def compact(self) -> None:
        """Rewrite the store so that erased text leaves the file itself (SQLite: FTS
        merge, WAL checkpoint and VACUUM; PostgreSQL: VACUUM). Slow on a big store."""
        self._check_writable("compact")
        self._store.compact()

    def jobs(self, *, user_id: str | None = None) -> dict[str, Any]:
        """The distillation queue: pending, running and failed jobs (with recent errors);
        `ready`, how many are running or due (not waiting out a retry backoff); and
        `backlog_age_s`, how long the oldest job not yet done (pending or running) has
        waited since it was queued, by this Memory's clock (None when none waits). With no
        `user_id`, also `distilled`: the jobs this Memory has distilled since it opened.
        `runs`: the recent runs of background work (distillation, topics, the decay
        sweep, reflection, notes, the graph backfill "graph"), oldest first: capability,
        user_id, trigger ("after 10 turns", "idle 30 s", "timer", "flush", "queued"),
        started_at, finished_at, seconds, items and error (lifecycle/scheduler.py; kept in memory, the last `Config.job_log`)."""
        if user_id is not None:
            Scope(user_id)
        now = self._clock.now()
        data = self._store.job_stats(user_id, now=format_ts(now))
        # `oldest` is over every state, failed jobs too (kept until forgotten); the backlog
        # is dated by the oldest job still waiting (pending or running).
        queued = data.pop("oldest_waiting", None)
        waiting = data["pending"] + data["running"]
        data["backlog_age_s"] = (round(max(0.0, (now - parse_ts(queued)).total_seconds()), 3)
                                 if waiting and queued is not None else None)
        if user_id is None:
            data["distilled"] = self._distiller.processed if self._distiller is not None else 0
        data["runs"] = self._scheduler.log.recent(user_id)
        return data

    def _check_writable(self, operation: str) -> None:
        if self.read_only:
            raise PermissionDeniedError(f"this Memory is read-only (opened with read_only=True): {operation}() would "
                                        "write to it")

    def close(self) -> None:
        if self._notes_lane is not None:
            self._notes_lane.stop()
        if self._graph_lane is not None:
            self._graph_lane.stop()
        if self._vitals_lane is not None:
            self._vitals_lane.stop()
        if self._distiller is not None:
            self._distiller.stop()
        if self._topic_lane is not None:
            self._topic_lane.stop()
        if self._reflector is not None:
            self._reflector.close()
        self._store.close()
        close = getattr(self._embedder, "close", None)
        if self._owns_embedder and callable(close):
            close()  # e.g. the HTTP client of an OpenAI-compatible embedder

    def __enter__(self) -> "Memory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Memory({self._store.url!r})"


WHOLE_SCOPE_PAGE = 64  # records read at a time when checking whether a whole scope fits a budget


def _hit(record: Record, score: float) -> Hit:
    return Hit(
        id=record.id, text=record.text, kind=record.kind, score=score, sources=record.sources,
        session_id=record.session_id, created_at=record.created_at, valid_to=record.valid_to,
        metadata=record.metadata, role=record.role, name=record.name,
    )


def _rescope(item: ExportedRecord, user_id: str) -> ExportedRecord:
    rid = new_id()
    sources = [rid if s == item.record.id else s for s in item.record.sources]
    record = replace(item.record, id=rid, user_id=user_id, sources=sources)
    versions = [replace(v, memory_id=rid) for v in item.versions]
    vitals = None if item.vitals is None else replace(item.vitals, memory_id=rid)
    return ExportedRecord(record=record, vector=item.vector, versions=versions, vitals=vitals)


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    check_strings("metadata", dict(metadata))
    try:
        encoded = json.dumps(dict(metadata))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serialisable: {exc}") from None
    if len(encoded) > 64_000:
        raise InvalidInputError("metadata is larger than 64 kB")
    return json.loads(encoded)


def _check_memory_id(id: Any) -> None:
    """A memory id is Engram's own ("mem_..."): any other well-formed string is simply
    not found; what cannot be an id at all is named."""
    if not isinstance(id, str):
        raise InvalidInputError(f"memory id must be a string, got {type(id).__name__}")
    if not id:
        raise InvalidInputError("memory id must not be empty")
    if len(id) > MAX_ID_CHARS:
        raise InvalidInputError(f"memory id is {len(id)} characters long; the limit is {MAX_ID_CHARS}")
    check_text("memory id", id)


def flag_injections(records: list[NewRecord]) -> list[NewRecord]:
    """Turns that carry instructions aimed at the assistant or its tools (guard.py), alone
    or split across the batch, are stored marked (`metadata.flagged`: the reason), never
    dropped: search shows them marked, distillation never reads them as true."""
    flags: dict[int, str] = {}
    for index, record in enumerate(records):
        found = guard.flag(record.text, role=record.role, name=record.name)
        if found is None and record.name is not None:
            found = guard.flag_label(record.name, role=record.role)
        if found is not None:
            flags[index] = found.reason
    if len(records) > 1:
        split = guard.flag_window([r.text for r in records], each=False)
        if split is not None and not flags.keys() & set(split.turns):  # not one turn's own instruction again
            for index in split.turns:
                flags[index] = split.reason
    return [replace(r, metadata={**r.metadata, guard.METADATA_KEY: flags[i]}) if i in flags else r
            for i, r in enumerate(records)]


def _filters(filters: Mapping[str, Any] | None) -> list:
    return parse_filters(check_strings("filters", filters))


def _in_time(conditions: list, as_of: Any, include_retired: bool = False) -> list:
    """Current memories only (not superseded or retracted), or with `as_of` what was
    true then; `include_retired` or a caller's own valid_to filter lifts the default."""
    if as_of is not None:
        return [*conditions, valid_at(normalize_ts(as_of, field="as_of"))]
    if include_retired or any(c.field == "valid_to" for c in conditions):
        return conditions
    return [*conditions, current()]


def _unarchived(conditions: list, include_archived: bool) -> list:
    """Archived memories (faded by decay) are out unless asked for, or the caller's
    filters name a state."""
    if include_archived or any(c.field == "state" for c in conditions):
        return conditions
    return [*conditions, unarchived()]


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False, got {type(value).__name__}")


def _id_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise InvalidInputError(f"{name} must be a list of memory ids, got {type(value).__name__}")
    ids = list(dict.fromkeys(value))
    for item in ids:
        _check_memory_id(item)
    return ids


def _searchable(conditions: list) -> list:
    """Session summaries answer "what happened in that session", not a question: on
    LoCoMo, letting them compete with turns and facts cost multi-hop recall within 2,000
    tokens 0.712 -> 0.696 (docs/benchmarks.md). So search leaves them out unless the
    caller's filters name a kind; list() and the small-memory mode still give them."""
    if any(c.field == "kind" for c in conditions):
        return conditions
    return [*conditions, Condition("kind", "ne", "summary")]


def _dense_query(query: str, speakers: frozenset[str]) -> str:
    """What dense search embeds for `query`: the query less the `speakers`' names it
    mentions (speakers.without_names), or the query itself when it mentions none or is
    nothing but names."""
    named = mentioned_names(query, speakers)
    bare = without_names(query, named) if named else query
    return bare if words(bare) else query


def _check_query(query: Any, max_chars: int) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("query must be a non-empty string")
    if len(query) > max_chars:
        raise InvalidInputError(f"query has {len(query)} characters; the limit is {max_chars}")
    check_text("query", query)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidInputError(f"{name} must be between {low} and {high}, got {value}")
