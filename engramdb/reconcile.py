"""Reconciliation: each distilled candidate against the memories already stored.

For every candidate, in the order it was said, one decision:

- ADD: nothing stored says it; it becomes a new memory.
- UPDATE: it gives a new value to an exclusive slot ("lives in Paris" → "moved to
  Berlin"): the old memory is retired (valid_to = when the new value became true), not
  deleted; the new one is added and history links the two.
- DELETE: it retracts a slot ("my dog died", "we broke up"): the memories it names
  are retired the same way.
- NOOP: a current memory already says it; the candidate's turns are added to that
  memory's sources.

Supersession is scoped by slot (subject, attribute family and, for multi-valued
attributes, value: a new pet does not retire the old one), see extract/vocab.py.
Candidates without a slot (events, summaries, free statements) are only ever added or
found to be duplicates. Pure logic: the worker (distill.py) reads and writes the store."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .clock import normalize_ts
from .extract.base import Candidate
from .extract.vocab import normalize_value, same_slot, slot_of
from .ids import new_id
from .stores.base import NewRecord, Retirement, retracted_by, superseded_by
from .types import Record, Scope


@dataclass(frozen=True)
class Stored:
    """A memory as reconciliation compares it: its slot fields, from its metadata."""

    id: str
    kind: str
    subject: str
    attribute: str | None
    value: str | None
    qualifier: str | None
    polarity: int
    text: str

    @classmethod
    def of(cls, record: Record) -> Stored:
        meta = record.metadata
        return cls(record.id, record.kind, str(meta.get("subject") or ""), meta.get("attribute"), meta.get("value"),
                   meta.get("qualifier"), int(meta.get("polarity", 1)), record.text)

    @classmethod
    def planned(cls, id: str, c: Candidate) -> Stored:
        return cls(id, c.kind, c.subject, c.attribute, c.value, c.qualifier, c.polarity, c.text)


@dataclass
class Plan:
    """What one job writes: new memories, retirements, confirmations, and why."""

    inserts: list[NewRecord] = field(default_factory=list)
    retirements: list[Retirement] = field(default_factory=list)
    confirmations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    decisions: list[tuple[str, str]] = field(default_factory=list)  # (ADD/UPDATE/DELETE/NOOP, text)


def slot_key(candidate: Candidate | Stored) -> str | None:
    """The store's index key for a slot: subject and attribute family."""
    slot = slot_of(candidate)
    return None if slot is None else f"{slot[0]}|{slot[1]}"


def plan(candidates: Sequence[Candidate], stored: Sequence[Record], duplicates: Mapping[str, Record], *,
         scope: Scope, recorded_at: str, turn_sources: Mapping[str, list[str]], extractor: str,
         text_key: Callable[[str], str]) -> Plan:
    """Decide each candidate against `stored` (the current memories of the candidates'
    slots) and `duplicates` (current memories by text key). Candidates are taken in the
    order they were said; each sees the decisions of those before it."""
    out = Plan()
    live: dict[str, Stored] = {r.id: Stored.of(r) for r in stored}
    by_text: dict[str, str] = {key: r.id for key, r in duplicates.items()}
    planned_index: dict[str, int] = {}
    for c in sorted(candidates, key=lambda c: c.said_at):
        when = normalize_ts(c.when or c.said_at, field="when")
        slotted = slot_key(c) is not None
        same = [s for s in live.values() if slotted and same_slot(c, s)]
        if c.operation == "retract":
            targets = [s for s in same if c.value is None or _same_value(c, s)]
            for target in targets:
                _retire(out, live, planned_index, target.id, when, "retract", retracted_by(c.sources))
            out.decisions.append(("DELETE" if targets else "NOOP", c.text))
            continue
        repeat = next((s for s in same if _same_value(c, s) and s.polarity == c.polarity), None)
        if repeat is None and not slotted:
            existing = by_text.get(text_key(c.text))
            repeat = live.get(existing) if existing else None
            if repeat is None and existing:
                repeat = Stored.planned(existing, c)
        if repeat is not None:
            merged = out.confirmations.get(repeat.id, ()) + tuple(c.sources)
            out.confirmations[repeat.id] = tuple(dict.fromkeys(merged))
            out.decisions.append(("NOOP", c.text))
            continue
        new = new_id()
        superseded = [s for s in same if not _same_value(c, s) or s.polarity != c.polarity]
        for old in superseded:
            _retire(out, live, planned_index, old.id, when, "supersede", superseded_by(new))
        out.inserts.append(_record(new, c, scope, when, recorded_at, turn_sources, extractor,
                                   reason=f"supersedes {', '.join(o.id for o in superseded)}" if superseded else None))
        planned_index[new] = len(out.inserts) - 1
        live[new] = Stored.planned(new, c)
        by_text[text_key(c.text)] = new
        out.decisions.append(("UPDATE" if superseded else "ADD", c.text))
    return out


def _same_value(c: Candidate, s: Stored) -> bool:
    return normalize_value(c.value) == normalize_value(s.value)


def _retire(out: Plan, live: dict[str, Stored], planned_index: dict[str, int], id: str, when: str, event: str,
            reason: str) -> None:
    live.pop(id, None)
    if id in planned_index:  # added by this same job: written already retired
        i = planned_index.pop(id)
        out.inserts[i] = _with_valid_to(out.inserts[i], when)
        return
    out.retirements.append(Retirement(id=id, valid_to=when, event=event, reason=reason))


def _with_valid_to(record: NewRecord, when: str) -> NewRecord:
    from dataclasses import replace

    return replace(record, valid_to=when)


def _record(id: str, c: Candidate, scope: Scope, when: str, recorded_at: str,
            turn_sources: Mapping[str, list[str]], extractor: str, reason: str | None) -> NewRecord:
    sources = list(dict.fromkeys(s for turn in c.sources for s in turn_sources.get(turn, [turn])))
    metadata: dict[str, Any] = {
        "subject": c.subject, "attribute": c.attribute, "value": c.value, "qualifier": c.qualifier,
        "polarity": c.polarity, "when": c.when, "when_end": c.when_end, "said_at": c.said_at,
        "keywords": list(c.keywords), "entities": list(c.entities), "confidence": c.confidence, "extractor": extractor,
    }
    if reason:
        metadata["reason"] = reason
    return NewRecord(
        id=id, scope=scope, kind=c.kind, text=c.text, created_at=when, recorded_at=recorded_at,
        sources=sources, metadata={k: v for k, v in metadata.items() if v not in (None, [], "")},
        slot=slot_key(c), derived_from=tuple(c.sources),
    )
