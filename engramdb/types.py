"""The typed hand-offs between Engram's stages, and what the public API returns."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import InvalidInputError

MAX_ID_CHARS = 256

# C0 and C1 control characters (NUL, tab, newline, escape, ...) and the two Unicode line
# breaks: no id holds them (an id is a key, and it is printed in prompt blocks and logs).
_ID_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_text(field: str, value: str) -> str:
    """Refuse a string that is not valid Unicode: a lone surrogate, which is what bytes
    that were not UTF-8 become in Python (and no store, JSON reply or terminal takes)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")  # faster than a regex: only surrogates cannot be encoded
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{field} is not valid Unicode: a lone surrogate U+{ord(value[exc.start]):04X} at character {exc.start} "
            "(was the input UTF-8?)"
        ) from None
    return value


def check_strings(field: str, value: Any) -> Any:
    """check_text on every string of a JSON-like value (keys included); errors name the
    path, e.g. metadata['tags'][2]."""
    if isinstance(value, str):
        check_text(field, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                check_text(f"{field} key {key!r}", key)
            check_strings(f"{field}[{key!r}]", item)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_strings(f"{field}[{index}]", item)
    return value


def _check_id(name: str, value: object, *, required: bool) -> str | None:
    """The rule for every id (users, agents, sessions, tenants, message ids, speaker
    names): a string of 1-256 characters, valid Unicode, without control characters or
    line breaks, without leading or trailing whitespace. Ids are compared exactly, so
    'acme ' and 'acme' would be two tenants: such ids are refused, never stripped (that
    would merge two existing scopes)."""
    if value is None:
        if required:
            raise InvalidInputError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(f"{name} must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInputError(f"{name} is {len(value)} characters long; the limit is {MAX_ID_CHARS}")
    check_text(name, value)
    bad = _ID_FORBIDDEN.search(value)
    if bad is not None:
        char = bad.group()
        what = "control character" if char not in "\u2028\u2029" else unicodedata.name(char).lower()
        raise InvalidInputError(f"{name} contains a {what} U+{ord(char):04X} at character {bad.start()}; "
                                "ids cannot hold control characters or line breaks")
    if value != value.strip():
        raise InvalidInputError(f"{name} {value!r} has leading or trailing whitespace; ids are compared exactly, "
                                "so remove it (Engram does not strip ids)")
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
    state: str = "active"  # active, archived, superseded, retracted, merged (living/vitals.py STATES)

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
    profile: Profile | None = None  # recall(include_profile=True): the profile that leads the block

    @property
    def sources(self) -> list[str]:
        """The source turn ids of every memory in the block, in block order, once each."""
        lead = self.profile.sources if self.profile is not None else []
        return list(dict.fromkeys([*lead, *(s for hit in self.hits for s in hit.sources)]))

    def to_dict(self) -> dict[str, Any]:
        out = {"text": self.text, "hits": [h.to_dict() for h in self.hits], "complete": self.complete,
               "sources": self.sources}
        if self.profile is not None:
            out["profile"] = self.profile.to_dict()
        return out


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
    skipped: int = 0  # empty turns left out with add(..., skip_empty=True)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def to_dict(self) -> dict[str, Any]:
        return {"records": [r.to_dict() for r in self.records], "skipped": self.skipped}


@dataclass(frozen=True)
class ScoredId:
    """A candidate from one retriever: the store row and its score (higher is better)."""

    rowid: int
    score: float


@dataclass(frozen=True)
class ProfileItem:
    """One line of a profile: a current fact or preference (or a plan), its topic, and
    the memory and turns it stands on."""

    topic: str  # home, work, family, health, about, tastes, plans, other (living/profile.py)
    text: str
    memory_id: str
    kind: str
    sources: list[str]
    since: str  # when it became true (the memory's created_at)
    subject: str = "user"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    """What `Memory.profile()` gives back: the current facts and preferences of a scope,
    grouped by topic, most important first within the budget, as a block and as items."""

    user_id: str
    agent_id: str | None
    as_of: str | None
    text: str  # rendered by Engram (living/profile.py over block.py); "" when nothing is known
    items: list[ProfileItem]
    complete: bool  # every current item fit the budget

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(s for item in self.items for s in item.sources))

    def by_topic(self) -> dict[str, list[ProfileItem]]:
        out: dict[str, list[ProfileItem]] = {}
        for entry in self.items:
            out.setdefault(entry.topic, []).append(entry)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "as_of": self.as_of, "text": self.text,
                "items": [i.to_dict() for i in self.items], "complete": self.complete, "sources": self.sources}
