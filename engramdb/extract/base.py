"""The typed hand-off from extraction to reconciliation.

An `Extractor` reads turns (`TurnInput`) and returns an `ExtractionResult`: the
`Candidate` memories it distilled, what it learnt about each turn for indexing
(`TurnNotes`), what it had to skip and why, and what it cost. Extractors never write
anything; deciding ADD / UPDATE / DELETE / NOOP against stored memories is the
reconciler's job, and `Candidate.slot` plus `vocab.same_slot` tell it which memories
talk about the same thing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, Protocol

from ..block import valid_name
from ..clock import parse_ts
from .vocab import normalize_subject

Kind = Literal["fact", "preference", "event", "summary"]
Operation = Literal["assert", "retract"]
SPEAKER_PREFIX = re.compile(r"^\s*([A-Z][\w'.-]{0,30}(?: [A-Z][\w'.-]{0,30})?):\s+(\S.*)$", re.DOTALL)
# a later line of a turn that opens another speaker's part ("...\nBen: text"); see `speaker_parts`
_LINE_PREFIX = re.compile(r"^[ \t]*([A-Z][\w'.-]{0,30}(?: [A-Z][\w'.-]{0,30})?):[ \t]+(?=\S)", re.MULTILINE)
KINDS: tuple[str, ...] = ("fact", "preference", "event", "summary")
OPERATIONS: tuple[str, ...] = ("assert", "retract")


@dataclass(frozen=True)
class TurnInput:
    """One stored turn, as an extractor sees it."""

    id: str
    role: str
    text: str
    timestamp: str  # ISO 8601; relative dates ("yesterday") are resolved against it
    speaker: str | None = None  # the speaker's name; None means "the user" for role "user"
    session_id: str | None = None

    @property
    def moment(self) -> datetime:
        return parse_ts(self.timestamp)

    @property
    def subject(self) -> str:
        """Who "I" is: the speaker's name, else a "Name: text" prefix (LoCoMo style), else "user"."""
        if self.speaker and self.speaker.strip():
            return normalize_subject(self.speaker)
        match = SPEAKER_PREFIX.match(self.text)
        return normalize_subject(match.group(1)) if match and _is_name(match.group(1)) else "user"

    @classmethod
    def from_record(cls, record) -> TurnInput:
        """From a stored `types.Record` of kind "turn"."""
        return cls(id=record.id, role=record.role or "user", text=record.text, timestamp=record.created_at,
                   speaker=record.name, session_id=record.session_id)


def _is_name(label: str) -> bool:
    """Whether a "Label:" names a person: never a role or a kind of memory ("System:",
    "Assistant:", "Memory:"), by the rule of the rendered block's speaker names."""
    return valid_name(label) is not None


def speaker_parts(turn: TurnInput) -> list[TurnInput]:
    """The turn as its speakers' parts, each with its speaker settled and its label cut.

    A turn whose text does not open with a "Name: " label, or opens with another name
    than the speaker the turn names, is one part, as sent. One that opens with a label
    (LoCoMo style, named or not, as in issue 14's input shapes; exports and `bench ingest
    --shape long` join consecutive turns as "Name: text" lines) is split at every line
    that opens with a label: "Ana: I moved.\nBen: I got a dog." is Ana's "I moved." and
    Ben's "I got a dog.", each part keeping the turn's id, role, time and session. A
    label names a speaker for attribution only (whose "I" it is): the role stays the
    turn's, and a label that is a role or a kind of memory ("System:", "Fact:") names no
    one (the line stays the previous speaker's)."""
    first = SPEAKER_PREFIX.match(turn.text)
    if not first or not _is_name(first.group(1)):
        return [turn]
    named = bool(turn.speaker and turn.speaker.strip())
    if named and normalize_subject(first.group(1)).casefold() != normalize_subject(turn.speaker).casefold():
        return [turn]  # a named speaker's text that opens with another name: theirs, as sent
    body = first.group(2)
    cuts = [m for m in _LINE_PREFIX.finditer(body) if m.start() > 0 and _is_name(m.group(1))]
    names = [turn.speaker if named else first.group(1), *(m.group(1) for m in cuts)]
    starts = [0, *(m.end() for m in cuts)]
    ends = [*(m.start() for m in cuts), len(body)]
    return [TurnInput(turn.id, turn.role, body[start:end].rstrip() if end < len(body) else body[start:end],
                      turn.timestamp, name, turn.session_id)
            for name, start, end in zip(names, starts, ends)]


@dataclass(frozen=True)
class Candidate:
    """One distilled memory, not yet reconciled with what is stored.

    `subject`, `attribute`, `value` and `qualifier` place a fact or preference in a slot
    (see `slot`): for an `exclusive` attribute a new value supersedes the old one ("lives
    in Paris" → "moved to Berlin"); for a multi-valued one only the same value is touched
    (a new pet does not retire the old one). `operation="retract"` says the slot's value
    stopped being true ("my dog died", "we broke up"); a retract with `value=None` retires
    whatever the slot holds (for multi-valued attributes, the values with the same
    `qualifier`)."""

    kind: Kind
    text: str  # self-contained, third person, naming the subject: "Alice lives in Berlin"
    subject: str  # normalised: the speaker's name, or "user"
    sources: tuple[str, ...]  # the ids of the turns it came from
    said_at: str  # ISO timestamp of the latest source turn: when it was learnt to be true
    attribute: str | None = None  # a name from vocab.ATTRIBUTES, or a free "x_y" slug (never exclusive)
    value: str | None = None
    qualifier: str | None = None  # what kind of value: "dog" for a pet, "sister" for a sibling
    exclusive: bool = False
    operation: Operation = "assert"
    polarity: int = 1  # -1 for dislikes and negated statements
    when: str | None = None  # ISO date it happened / became true, when the turn says so
    when_end: str | None = None  # last day (inclusive) when `when` is a range ("last May")
    keywords: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    confidence: float = 0.5

    @property
    def slot(self) -> tuple[str, str, str | None] | None:
        """What this candidate competes with: (subject, attribute-family, value) for a
        multi-valued attribute, (subject, attribute-family, None) for an exclusive one,
        None for events and summaries (which never supersede anything)."""
        from .vocab import slot_of

        return slot_of(self)

    def with_sources(self, sources: Sequence[str]) -> Candidate:
        return replace(self, sources=tuple(sources))


@dataclass(frozen=True)
class Entity:
    text: str
    label: str  # spaCy's label: PERSON, GPE, ORG, …


@dataclass(frozen=True)
class TurnNotes:
    """What an extractor learnt about one turn, for indexing it under more keys."""

    turn_id: str
    keywords: tuple[str, ...] = ()
    entities: tuple[Entity, ...] = ()
    dates: tuple[str, ...] = ()  # ISO dates the turn talks about, resolved
    phrases: tuple[str, ...] = ()  # noun phrases of two words or more ("home country"): entity-graph nodes


@dataclass(frozen=True)
class Skipped:
    """Something an extractor could not use; the turns themselves are untouched."""

    sources: tuple[str, ...]
    reason: str
    raw: str | None = None  # the offending output, cut short


@dataclass
class ExtractionResult:
    candidates: list[Candidate] = field(default_factory=list)
    notes: dict[str, TurnNotes] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    calls: int = 0  # LLM calls, repairs included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def merge(self, other: ExtractionResult) -> ExtractionResult:
        """Add `other` into this result (accounting summed) and return self."""
        self.candidates.extend(other.candidates)
        self.notes.update(other.notes)
        self.skipped.extend(other.skipped)
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.seconds += other.seconds
        return self

    def of_kind(self, kind: str) -> list[Candidate]:
        return [c for c in self.candidates if c.kind == kind]


class Extractor(Protocol):
    """Turns in, candidate memories out. Raises ProviderError when a backend is down
    (the caller retries later); never raises for bad model output (it is skipped)."""

    name: str

    def extract(self, turns: Sequence[TurnInput]) -> ExtractionResult: ...
