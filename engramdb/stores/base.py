"""The Store seam: what every backend (SQLite now, PostgreSQL later) provides.

Stores receive validated, typed input; they own transactions, scoping and indexes.
Every read takes the caller's Scope and never returns rows outside it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..living.notes import Note, NotesBatch, NoteWork, Relation
from ..living.vitals import Candidate, Vitals
from ..types import Record, Scope, ScoredId, Version
from .filters import Condition


@dataclass(frozen=True)
class NewRecord:
    id: str
    scope: Scope
    kind: str
    text: str
    created_at: str
    recorded_at: str
    role: str | None = None
    name: str | None = None
    sources: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    valid_to: str | None = None
    slot: str | None = None  # "subject|attribute" of a fact that a newer value supersedes
    derived_from: tuple[str, ...] = ()  # ids of the turns a derived memory was distilled from


@dataclass(frozen=True)
class Job:
    """A durable unit of background work of one kind (`DISTILL`: distil these turns of
    this scope; `REDERIVE`: distil again what an erasure or an update left)."""

    id: int
    scope: Scope
    record_ids: list[str]
    attempts: int
    kind: str = "distill"
    created_at: str = ""  # when it was queued: how long it waited says whether distillation keeps up
    also: tuple[int, ...] = ()  # later jobs of the same scope and kind claimed with it (a backlog, batched)

    @property
    def ids(self) -> tuple[int, ...]:
        return (self.id, *self.also)


DISTILL, REDERIVE = "distill", "rederive"  # the job kinds the distiller runs; later issues add theirs
REFLECT = "reflect"  # form thoughts from a scope's recent turns with an LLM (living/reflection.py)


@dataclass(frozen=True)
class Retirement:
    """A current memory that stops being true: superseded by a newer one, or retracted."""

    id: str
    valid_to: str  # world time it stopped being true
    event: str  # "supersede" or "retract"
    reason: str  # superseded_by(...) or retracted_by(...): the cause by id, never by text
    causes: tuple[str, ...] = ()  # what retires it (linked: supersedes / retracts); () reads the reason

    def cause_ids(self) -> tuple[str, ...]:
        return self.causes or tuple(sorted(retired_by(self.reason)))


# A retirement's reason names its cause by ids only (no text that erasure must chase), for
# history; the cause itself is a typed link (supersedes, retracts) the stores query by id.
SUPERSEDED_BY, RETRACTED_BY, ID_SEPARATOR = "superseded by ", "retracted by ", ", "


def superseded_by(memory_id: str) -> str:
    return SUPERSEDED_BY + memory_id


def retracted_by(turn_ids: Sequence[str]) -> str:
    return RETRACTED_BY + ID_SEPARATOR.join(dict.fromkeys(turn_ids))


def retired_by(reason: str | None) -> frozenset[str]:
    """The ids a retirement's reason names (for a Retirement made without its causes)."""
    for prefix in (SUPERSEDED_BY, RETRACTED_BY):
        if reason and reason.startswith(prefix):
            return frozenset(i for i in reason[len(prefix):].split(ID_SEPARATOR) if i)
    return frozenset()


@dataclass(frozen=True)
class Mention:
    """The phrases (graph.phrase_key keys) a memory says, read from the text whose
    `content_hash` is given: the entity graph's edges of one memory (graph.py)."""

    record_id: str
    content_hash: str
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class JobOutcome:
    """What one distillation job writes, all in one transaction with the job's end."""

    inserts: list[NewRecord]
    vectors: np.ndarray
    retirements: list[Retirement] = field(default_factory=list)
    confirmations: dict[str, tuple[str, ...]] = field(default_factory=dict)  # memory id -> more source turns
    revivals: list[str] = field(default_factory=list)  # outdated memories their re-derivation says again
    sufficient: frozenset[tuple[str, str]] = frozenset()  # (memory, turn): that turn alone says the memory
    mentions: tuple[Mention, ...] = ()  # the entity graph's edges of the job's turns and new memories


@dataclass(frozen=True)
class ExportedRecord:
    record: Record
    vector: np.ndarray | None
    versions: list[Version]
    vitals: Vitals | None = None  # None: never recalled, confirmed or given feedback


class Records(Protocol):
    """Memories and their history, scoped by user."""

    url: str

    def insert(self, records: Sequence[NewRecord], vectors: np.ndarray, *, actor: str | None,
               enqueue: bool = False) -> list[Record]: ...
    def get(self, id: str, *, user_id: str | None = None) -> Record | None: ...
    def by_rowids(self, rowids: Sequence[int], scope: Scope) -> dict[int, Record]: ...
    def records_by_ids(self, ids: Sequence[str], user_id: str) -> list[Record]: ...
    def list(self, scope: Scope, conditions: list[Condition], limit: int, offset: int) -> list[Record]: ...
    def count(self, scope: Scope) -> int: ...
    def update(self, id: str, text: str, vector: np.ndarray, *, at: str, actor: str | None, reason: str | None,
               metadata: dict[str, Any] | None = None) -> Record: ...
    def delete(self, id: str, *, at: str, actor: str | None) -> bool: ...
    def history(self, id: str) -> list[Version]: ...
    def history_owner(self, id: str) -> str | None: ...
    def forget(self, scope: Scope) -> int: ...
    def reset(self) -> None: ...
    def stats(self, user_id: str | None = None) -> dict[str, Any]: ...


class KeywordIndex(Protocol):
    def keyword_search(self, scope: Scope, query: str, conditions: list[Condition], limit: int) -> list[ScoredId]: ...


class VectorIndex(Protocol):
    def embedder_name(self) -> tuple[str, int] | None: ...
    def set_embedder_name(self, name: str, dim: int) -> None: ...
    def vector_search(self, scope: Scope, vector: np.ndarray, conditions: list[Condition], limit: int) -> list[ScoredId]: ...
    def vector_search_many(self, scope: Scope, vectors: np.ndarray, conditions: list[Condition],
                           limit: int) -> list[list[ScoredId]]:
        """`vector_search` for each row of `vectors` (one answer per row, in order), in
        one pass over the scope where the store can."""
        ...
    def missing_vectors(self, limit: int) -> list[tuple[int, str]]: ...
    def set_vectors(self, rowids: Sequence[int], vectors: np.ndarray) -> None: ...
    def clear_vectors(self) -> None: ...
    def flush(self, timeout: float | None = None) -> bool: ...


class Derivations(Protocol):
    """Derived memories as reconciliation reads them (their links are the lifecycle's)."""

    def slot_memories(self, user_id: str, slots: Sequence[str]) -> list[Record]: ...
    def current_derived(self, user_id: str, content_hashes: Sequence[str]) -> list[Record]: ...
    def derived_of(self, user_id: str, turn_ids: Sequence[str]) -> list[tuple[Record, str]]: ...
    def merge_thoughts(self, survivor: str, absorbed: Sequence[str], *, at: str, actor: str | None) -> list[str]: ...


class Jobs(Protocol):
    """The durable queue of background work."""

    def claim_job(self, *, now: str, lease_until: str, batch: int = 1) -> Job | None: ...
    def complete_job(self, job: Job, outcome: JobOutcome, *, at: str, actor: str | None) -> list[Record]: ...
    def fail_job(self, job: Job, error: str, *, at: str, retry_at: str | None) -> None: ...
    def release_job(self, job: Job, *, at: str) -> None: ...
    def job_stats(self, user_id: str | None = None, *, now: str | None = None) -> dict[str, Any]: ...
    def gather_job(self, scope: Scope, record_ids: Sequence[str], *, kind: str, at: str, every: int) -> bool: ...


class Transfer(Protocol):
    """Moving scopes (cubes) and whole stores (`engram migrate`)."""

    def export(self, scope: Scope) -> Iterator[ExportedRecord]: ...
    def import_records(self, items: Sequence[ExportedRecord], vectors: np.ndarray) -> int: ...
    def export_derived(self, user_id: str) -> dict[str, Any]: ...
    def import_derived(self, user_id: str, data: dict[str, Any]) -> None: ...
    def users(self) -> list[str]: ...
    def tombstones(self) -> Iterator[tuple[str, list[Version]]]: ...
    def import_tombstones(self, items: Sequence[tuple[str, list[Version]]]) -> int: ...


class Notes(Protocol):
    """Notes and `relates_to` links (living/notes.py), written by the notes lane."""

    def note_work(self, limit: int) -> NoteWork | None: ...
    def notes(self, user_id: str, ids: Sequence[str]) -> dict[str, list[Note]]: ...
    def note_heads(self, user_id: str, ids: Sequence[str]) -> dict[str, list[Note]]: ...
    def relations(self, user_id: str, ids: Sequence[str]) -> list[Relation]: ...
    def event_siblings(self, user_id: str, ids: Sequence[str]) -> dict[str, set[str]]: ...
    def note_vectors(self, user_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]: ...
    def write_notes(self, user_id: str, batch: NotesBatch, *, at: str, actor: str | None) -> None: ...
    def queue_notes(self, user_id: str, ids: Sequence[str], *, reason: str, at: str) -> None: ...


class Graph(Protocol):
    """The entity graph (graph.py): which phrases each memory says (stores/graph_sql.py)."""

    def mentions(self, user_id: str, ids: Sequence[str]) -> dict[str, tuple[str, ...]]: ...
    def write_mentions(self, user_id: str, mentions: Sequence[Mention]) -> None: ...
    def graph_size(self, user_id: str) -> int: ...
    def graph_work(self, limit: int) -> Any: ...  # GraphWork | None (stores/graph_sql.py)
    def graph_derived(self, user_id: str, turns: Sequence[str], upto: int) -> dict[str, tuple[str, ...]]: ...
    def write_backfill(self, user_id: str, mentions: Sequence[Mention], mark: int) -> None: ...


class VitalSigns(Protocol):
    """What use and time did to memories (living/vitals.py decides; vitals_sql.py writes)."""

    def reinforce(self, counts: Mapping[str, int], *, at: str, how: str = "recall") -> None: ...
    def record_feedback(self, outcomes: Mapping[str, bool]) -> None: ...
    def vitals(self, ids: Sequence[str]) -> dict[str, Vitals]: ...
    def set_state(self, changes: Sequence[tuple[str, str]], state: str, *, at: str,
                  actor: str | None) -> list[str]: ...
    def archived_matching(self, user_id: str, content_hashes: Sequence[str]) -> list[str]: ...
    def decay_candidates(self, *, before: str, after_rowid: int, limit: int) -> list[tuple[int, Candidate]]: ...


class Inspection(Protocol):
    """Bounded summaries for the web inspector (stores/inspection_sql.py); no erased text."""

    def user_counts(self, limit: int, after: str | None = None) -> list[tuple[str, int]]: ...
    def sessions(self, user_id: str, limit: int) -> list[dict[str, Any]]: ...
    def memory_links(self, memory_id: str) -> list[tuple[str, str, str]]: ...
    def job_rows(self, user_id: str | None, state: str | None, limit: int,
                 before: int | None = None) -> list[dict[str, Any]]: ...
    def erasures(self, user_id: str, limit: int, before: tuple[str, str] | None = None) -> list[dict[str, Any]]: ...


class Store(Records, KeywordIndex, VectorIndex, Derivations, Jobs, Transfer, VitalSigns, Inspection,
            Notes, Graph, Protocol):
    """Every backend, whole: the aggregates above, compaction and closing. Nothing
    outside stores/ calls a store method this does not declare (tests/test_seam.py)."""

    def compact(self) -> None: ...
    def close(self) -> None: ...
