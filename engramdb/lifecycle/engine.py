"""The derivation rule carried out: an erasure or an update of records, through one
store transaction (`LifecycleTx`), decided by `policy.py`. Written once for every
backend; the stores implement the transaction's few statements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..reconcile import Stored, slot_key
from ..stores.base import REDERIVE
from ..types import Record, Scope
from .policy import Derived, Rederive, Retired, cascade, to_reinstate

SESSION_TURNS = 256  # a summary is re-derived from at most this many of its session's newest turns

ERASED_SOURCE = "a source was erased"
UPDATED_SOURCE = "its source {} was updated"
CAUSE_ERASED = "what retired it was erased"
CAUSE_UPDATED = "what retired it was updated"


class LifecycleTx(Protocol):
    """The statements the lifecycle needs, inside one write transaction of a store."""

    def derived_from_any(self, source_ids: Sequence[str]) -> list[Derived]:
        """Derived memories linked to any of these sources, each with all its links."""
    def erase_records(self, ids: Sequence[str], *, at: str, actor: str | None, reason: str | None) -> None:
        """Remove records everywhere (row, keywords, vectors, history texts, links in and
        out); a tombstone version with `reason` keeps only the hash (None: no history
        is left at all)."""
    def narrow_sources(self, memory_ids: Sequence[str]) -> None:
        """Recompute memories' sources from the links they have left."""
    def unlink(self, memory_ids: Sequence[str], source_id: str) -> None: ...
    def outdate(self, ids: Sequence[str], *, at: str, actor: str | None, reason: str) -> None:
        """Retire current memories whose source changed (event 'outdate')."""
    def retired_for(self, user_id: str, causes: set[str]) -> list[Retired]:
        """Retired memories that any of `causes` supersedes or retracts (typed links), each
        with all that retires it (locked against concurrent reinstatement where the
        backend needs it)."""
    def holding(self, ids: set[str]) -> set[str]:
        """Which of these ids still hold as causes: they exist and are not outdated."""
    def slot_current(self, user_id: str, slots: Sequence[str]) -> list[Record]: ...
    def reinstate(self, ids: Sequence[str], *, at: str, actor: str | None, reason: str) -> None: ...
    def session_turns(self, scope: Scope, limit: int) -> list[str]: ...
    def enqueue(self, scope: Scope, turn_ids: Sequence[str], *, at: str, kind: str = ...) -> None: ...


def erase(tx: LifecycleTx, user_id: str, ids: Sequence[str], *, at: str, actor: str | None,
          reason: str = "deleted", tombstone: bool = True) -> set[str]:
    """Erase records and carry the derivation rule through: what was derived from them is
    kept (a live source alone says it), or erased and re-derived from what remains; what
    they retired is reinstated. Returns every id erased. `tombstone=False` leaves no
    history for `ids` (forget of a scope), cascaded memories always get one."""
    originals = list(dict.fromkeys(ids))
    first = set(originals)
    gone = set(originals)
    affected: dict[str, Derived] = {}
    frontier = originals
    while frontier:  # memories derived from erased memories are affected in turn
        for memory in tx.derived_from_any(frontier):
            affected.setdefault(memory.id, memory)
        decided = cascade(affected.values(), gone)
        frontier = [m for m in decided.erase if m not in gone]
        gone.update(frontier)
    decided = cascade([m for m in affected.values() if m.id not in first], gone)
    retired = tx.retired_for(user_id, gone)  # before the erasure takes the links that name the causes
    tx.erase_records(originals, at=at, actor=actor, reason=reason if tombstone else None)
    tx.erase_records(decided.erase, at=at, actor=actor, reason=ERASED_SOURCE)
    tx.narrow_sources(decided.keep)
    _rederive(tx, decided.rederive, gone, at)
    _reinstate(tx, user_id, [r for r in retired if r.id not in gone], gone, at, actor, CAUSE_ERASED)
    return gone


def outdate(tx: LifecycleTx, user_id: str, turn: Record, *, at: str, actor: str | None) -> None:
    """A turn's text was replaced: the current memories derived from it are retired
    (unless another live source alone says them), its new text and their other sources
    are distilled again, and what they (or the turn) retired is reinstated."""
    affected = [m for m in tx.derived_from_any([turn.id]) if m.current]
    decided = cascade(affected, {turn.id})
    tx.unlink(decided.keep, turn.id)
    tx.narrow_sources(decided.keep)
    tx.outdate(decided.erase, at=at, actor=actor, reason=UPDATED_SOURCE.format(turn.id))
    scope = Scope(turn.user_id, turn.agent_id, turn.session_id)
    _rederive(tx, [Rederive(scope, (turn.id,)), *decided.rederive], set(), at)
    changed = {turn.id, *decided.erase}
    _reinstate(tx, user_id, tx.retired_for(user_id, changed), changed, at, actor, CAUSE_UPDATED)


def _rederive(tx: LifecycleTx, wanted: Sequence[Rederive], gone: set[str], at: str) -> None:
    for item in wanted:
        turns = [t for t in item.turn_ids if t not in gone]
        if item.session:
            turns = list(dict.fromkeys([*tx.session_turns(item.scope, SESSION_TURNS), *turns]))
            turns = [t for t in turns if t not in gone]
        if turns:
            tx.enqueue(item.scope, turns, at=at, kind=REDERIVE)


def _reinstate(tx: LifecycleTx, user_id: str, retired: Sequence[Retired], gone: set[str], at: str,
               actor: str | None, reason: str) -> None:
    if not retired:
        return
    causes = set().union(*(r.causes for r in retired))
    holding = tx.holding(causes - gone)
    slots = sorted({r.slot for r in retired if r.slot is not None})
    current: dict[str, list[tuple[str, object, str]]] = {}
    for record in tx.slot_current(user_id, slots):
        stored = Stored.of(record)
        current.setdefault(slot_key(stored) or "", []).append((record.id, stored, record.created_at))
    tx.reinstate(to_reinstate(retired, gone, holding, current), at=at, actor=actor, reason=reason)


def retired_entry(record: Record, causes: frozenset[str]) -> Retired:
    """A retired memory for the policy, from its record and what retires it."""
    stored = Stored.of(record)
    slot = slot_key(stored)
    return Retired(record.id, causes, slot, stored if slot else None, record.created_at)
