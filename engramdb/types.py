"""The typed hand-offs between Engram's stages, and what the public API returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import InvalidInputError

MAX_ID_CHARS = 256


def _check_id(name: str, value: object, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise InvalidInputError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(f"{name} must not be empty")
    if len(value) > MAX_ID_CHARS or "\x00" in value:
        raise InvalidInputError(f"{name} must be at most {MAX_ID_CHARS} characters, without NUL")
    return value


@dataclass(frozen=True)
class Scope:
    """Whose memory: a user, optionally narrowed to one agent and one session."""

    user_id: str
    agent_id: str | None = None
    session_id: str | None = None

    def __post_init__(self) -> None:
        _check_id("user_id", self.user_id, required=True)
        _check_id("agent_id", self.agent_id, required=False)
        _check_id("session_id", self.session_id, required=False)


@dataclass(frozen=True)
class Message:
    """One validated turn, ready to store."""

    role: str
    content: str
    timestamp: str  # stored UTC form, see clock.format_ts
    source_id: str | None = None  # the caller's id for the turn
    name: str | None = None  # the speaker


@dataclass(frozen=True)
class Record:
    """A stored memory (a turn, or later a fact, summary, …) as the API shows it."""

    id: str
    user_id: str
    agent_id: str | None
    session_id: str | None
    kind: str
    text: str
    role: str | None
    name: str | None
    sources: list[str]
    metadata: dict[str, Any]
    created_at: str  # when it was said / valid from
    valid_to: str | None
    recorded_at: str  # when Engram stored it
    updated_at: str
    seq: int  # order of arrival within the store
    expired_at: str | None = None  # when Engram retired it (superseded or retracted)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """One search result."""

    id: str
    text: str
    kind: str
    score: float
    sources: list[str]
    session_id: str | None
    created_at: str
    valid_to: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    role: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Recall:
    """What `recall()` gives back for a question: the prompt block and the memories in it."""

    text: str
    hits: list[Hit]
    complete: bool  # the whole scope fit the budget: nothing was left out

    @property
    def sources(self) -> list[str]:
        """The source turn ids of every memory in the block, in block order, once each."""
        return list(dict.fromkeys(s for hit in self.hits for s in hit.sources))

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "hits": [h.to_dict() for h in self.hits], "complete": self.complete,
                "sources": self.sources}


@dataclass(frozen=True)
class Version:
    """One entry of a memory's history."""

    memory_id: str
    version: int
    event: str  # "add", "update" or "delete"
    text: str | None  # None once deleted: only the hash remains
    content_hash: str
    at: str
    actor: str | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AddResult:
    """What one add() wrote."""

    records: list[Record]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def to_dict(self) -> dict[str, Any]:
        return {"records": [r.to_dict() for r in self.records]}


@dataclass(frozen=True)
class ScoredId:
    """A candidate from one retriever: the store row and its score (higher is better)."""

    rowid: int
    score: float
