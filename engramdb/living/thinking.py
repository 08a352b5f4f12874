"""Storing a thought: `Memory.think` and the reflection job both come here. The rules
are `thoughts.py`'s; this module reads the sources, writes the thought with its
`derived_from` links, and merges it with the similar current thoughts of its scope."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import guard
from ..errors import InvalidInputError, NotFoundError
from ..ids import new_id
from ..keys import index_text
from ..stores.base import NewRecord, Store
from ..stores.filters import Condition, current
from ..types import Record, Scope
from .thoughts import KIND, MERGE_CANDIDATES, MERGE_THRESHOLD, check_thought, mergeable, sources_of

__all__ = ["absorb_similar", "check_thought", "new_thought", "resting_on", "think"]

NOT_CURRENT = ("source {} is not current (superseded, retracted, outdated or merged): a thought rests on what is "
               "true now")


def resting_on(store: Store, user_id: str, source_ids: Sequence[str]) -> list[Record]:
    """The sources of a thought, each of the user's and current, or a typed error (an id
    of another user's memory is as unknown as one that never was)."""
    found = {r.id: r for r in store.records_by_ids(list(source_ids), user_id)}
    for source in source_ids:
        if source not in found:
            raise NotFoundError(f"no memory with id {source!r}")
        if found[source].valid_to is not None:
            raise InvalidInputError(NOT_CURRENT.format(source))
    return [found[s] for s in source_ids]


def flag_of(text: str, sources: Sequence[Record]) -> str | None:
    """Why a thought must be shown as untrusted: its own text reads as an instruction, or
    it rests on a flagged memory (guard.py). None for a clean one."""
    found = guard.flag(text)
    if found is not None:
        return found.reason
    return next((r.metadata[guard.METADATA_KEY] for r in sources if r.metadata.get(guard.METADATA_KEY)), None)


def new_thought(text: str, scope: Scope, sources: Sequence[Record], *, at: str,
                metadata: Mapping[str, Any] | None = None) -> NewRecord:
    meta = dict(metadata or {})
    meta.pop(guard.METADATA_KEY, None)  # only Engram flags
    flagged = flag_of(text, sources)
    if flagged is not None:
        meta[guard.METADATA_KEY] = flagged
    return NewRecord(id=new_id(), scope=scope, kind=KIND, text=text, created_at=at, recorded_at=at,
                     sources=sources_of(sources), metadata=meta, derived_from=tuple(r.id for r in sources))


def absorb_similar(store: Store, thought: Record, vector: np.ndarray, *, threshold: float = MERGE_THRESHOLD,
                   at: str, actor: str | None) -> Record:
    """Merge the current thoughts of `thought`'s user and agent (an agent's own, or the
    user's without one) that say the same conclusion into it (thoughts.mergeable; a
    flagged one only with a flagged one).
    Returns the thought as stored now, with every source."""
    scope = Scope(thought.user_id, thought.agent_id)
    conditions = [Condition("kind", "eq", KIND), current()]
    hits = store.vector_search(scope, vector, conditions, MERGE_CANDIDATES + 1)
    records = store.by_rowids([h.rowid for h in hits], scope)
    flagged = bool(thought.metadata.get(guard.METADATA_KEY))
    absorbed = [r.id for h in hits if (r := records.get(h.rowid)) is not None and r.id != thought.id
                and r.agent_id == thought.agent_id and bool(r.metadata.get(guard.METADATA_KEY)) == flagged
                and mergeable(thought.text, r.text, h.score, threshold)]
    if absorbed:
        store.merge_thoughts(thought.id, absorbed, at=at, actor=actor)
    return store.get(thought.id, user_id=thought.user_id) or thought


def think(store: Store, embed: Any, text: str, scope: Scope, source_ids: Sequence[str], *, at: str,
          actor: str | None, threshold: float, metadata: Mapping[str, Any] | None = None) -> Record:
    """Store one validated thought resting on `source_ids` and merge it with its kin."""
    sources = resting_on(store, scope.user_id, source_ids)
    record = new_thought(text, scope, sources, at=at, metadata=metadata)
    vector = embed([index_text(text, None)])
    (stored,) = store.insert([record], vector, actor=actor)
    if len(store.records_by_ids(list(source_ids), scope.user_id)) < len(sources):  # one was erased meanwhile
        store.delete(stored.id, at=at, actor=actor)
        resting_on(store, scope.user_id, source_ids)  # names it
    return absorb_similar(store, stored, vector[0], threshold=threshold, at=at, actor=actor)
