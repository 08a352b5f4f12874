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
from dataclasses import dataclass, field, replace
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
    created_at: str = ""  # when it became true

    @classmethod
    def of(cls, record: Record) -> Stored:
        meta = record.metadata
        return cls(record.id, record.kind, str(meta.get("subject") or ""), meta.get("attribute"), meta.get("value"),
                   meta.get("qualifier"), int(meta.get("polarity", 1)), record.text, record.created_at)

    @classmethod
    def planned(cls, id: str, c: Candidate, when: str = "") -> Stored:
        return cls(id, c.kind, c.subject, c.attribute, c.value, c.qualifier, c.polarity, c.text, when)


@dataclass
class Plan:
    """What one job writes: new memories, retirements, confirmations, revivals, and why."""

    inserts: list[NewRecord] = field(default_factory=list)
    retirements: list[Retirement] = field(default_factory=list)
    confirmations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    revivals: list[str] = field(default_factory=list)
    sufficient: set[tuple[str, str]] = field(default_factory=set)  # (memory, turn): that turn alone says it
    decisions: list[tuple[str, str]] = field(default_factory=list)  # (ADD/UPDATE/DELETE/NOOP/REVIVE, text)


def slot_key(candidate: Candidate | Stored) -> str | None:
    """The store's index key for a slot: subject and attribute family."""
    slot = slot_of(candidate)
    return None if slot is None else f"{slot[0]}|{slot[1]}"


def plan(candidates: Sequence[Candidate], stored: Sequence[Record], duplicates: Mapping[str, Record], *,
         scope: Scope, recorded_at: str, turn_sources: Mapping[str, list[str]], extractor: str,
         text_key: Callable[[str], str], linked: Mapping[str, tuple[Record, str]] | None = None) -> Plan:
    """Decide each candidate against `stored` (the current memories of the candidates'
    slots), `duplicates` (current memories by text key) and `linked` (text key ->
    (memory, its latest history event) of the memories already derived from these
    turns: distilling the same turns again changes nothing, and says again what their
    update outdated). Candidates are taken in the order they were said; each sees the
    decisions of those before it. A candidate changes only what became true before it:
    said before a newer value of its slot, it is written already superseded."""
    out = Plan()
    linked = linked or {}
    live: dict[str, Stored] = {r.id: Stored.of(r) for r in stored}
    by_text: dict[str, str] = {key: r.id for key, r in duplicates.items()}
    planned_index: dict[str, int] = {}
    for c in sorted(candidates, key=lambda c: c.said_at):
        when = normalize_ts(c.when or c.said_at, field="when")
        key = text_key(c.text)
        alone = c.sources[0] if len(c.sources) == 1 else None
        slotted = slot_key(c) is not None
        known = linked.get(key)
        revive = None
        if known is not None:
            record, event = known
            if event != "outdate" or record.id in out.revivals:
                if record.valid_to is None:
                    _confirm(out, record.id, c, alone)
                out.decisions.append(("NOOP", c.text))
                continue
            revive = record.id  # outdated by an update of a source, and said again
        same = [s for s in live.values() if slotted and same_slot(c, s)]
        earlier = [s for s in same if s.created_at <= when]
        later = [s for s in same if s.created_at > when]
        if c.operation == "retract":
            targets = [s for s in earlier if c.value is None or _same_value(c, s)]
            for target in targets:
                _retire(out, live, planned_index, target.id, when, "retract", retracted_by(c.sources),
                        tuple(dict.fromkeys(c.sources)))
            out.decisions.append(("DELETE" if targets else "NOOP", c.text))
            continue
        repeat = next((s for s in same if _same_value(c, s) and s.polarity == c.polarity), None)
        if repeat is None and not slotted and revive is None:
            existing = by_text.get(key)
            repeat = live.get(existing) if existing else None
            if repeat is None and existing:
                repeat = Stored.planned(existing, c, when)
        if repeat is not None:
            _confirm(out, repeat.id, c, alone if text_key(repeat.text) == key else None)
            out.decisions.append(("NOOP", c.text))
            continue
        new = revive or new_id()
        newer = next((s for s in sorted(later, key=lambda s: s.created_at)
                      if not _same_value(c, s) or s.polarity != c.polarity), None)
        superseded = [s for s in earlier if not _same_value(c, s) or s.polarity != c.polarity]
        for old in superseded:
            _retire(out, live, planned_index, old.id, when, "supersede", superseded_by(new), (new,))
        if revive is not None:
            out.revivals.append(revive)
            _confirm(out, revive, c, alone)
            if newer is not None:
                out.retirements.append(Retirement(revive, newer.created_at, "supersede", superseded_by(newer.id),
                                                  (newer.id,)))
            out.decisions.append(("REVIVE", c.text))
        else:
            record = _record(new, c, scope, when, recorded_at, turn_sources, extractor,
                             reason=f"supersedes {', '.join(o.id for o in superseded)}" if superseded else None)
            out.inserts.append(record)
            if newer is not None:  # said before a newer value: true until that one
                out.retirements.append(Retirement(new, newer.created_at, "supersede", superseded_by(newer.id),
                                                  (newer.id,)))
            if alone is not None:
                out.sufficient.add((new, alone))
            planned_index[new] = len(out.inserts) - 1
            out.decisions.append(("UPDATE" if superseded else "ADD", c.text))
        if newer is None:
            live[new] = Stored.planned(new, c, when)
        by_text[key] = new
    return out


def _confirm(out: Plan, memory_id: str, c: Candidate, alone: str | None) -> None:
    """The candidate's turns say `memory_id` again; `alone`: its one turn says its very text."""
    merged = out.confirmations.get(memory_id, ()) + tuple(c.sources)
    out.confirmations[memory_id] = tuple(dict.fromkeys(merged))
    if alone is not None:
        out.sufficient.add((memory_id, alone))


def _same_value(c: Candidate, s: Stored) -> bool:
    return normalize_value(c.value) == normalize_value(s.value)


def _retire(out: Plan, live: dict[str, Stored], planned_index: dict[str, int], id: str, when: str, event: str,
            reason: str, causes: tuple[str, ...]) -> None:
    live.pop(id, None)
    planned_index.pop(id, None)
    out.retirements.append(Retirement(id=id, valid_to=when, event=event, reason=reason, causes=causes))


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
