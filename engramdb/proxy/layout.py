"""The memory system message the proxy puts in front of a conversation: what it holds,
in what order, within what budget.

Laid out stable-prefix-first, so that a server with prefix caching reads it once and
reuses it across turns: the profile (`Memory.profile()`, grouped by topic), then the
user's other long-lived memories (facts and preferences, oldest first: a new one joins
at the end), then the
memories that match the latest user message (they change every turn, so they come
last). Every memory line is rendered by engramdb/block.py (through
`retrieval.assemble`): stored text stays inside its `- ` line; the section titles are
Engram's and no memory line can begin like one.

Pure: no I/O. `prepare` decides what to ask the memory for; `system_message` renders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..block import PREAMBLE
from ..retrieval import MIN_BUDGET_TOKENS, assemble, estimate_tokens, same_text_key
from ..types import Hit, Record

STABLE_KINDS = ("fact", "preference")  # long-lived: they change when the user's life does
STABLE_SHARE = 0.4  # at most this share of the budget goes to the long-lived memories
PROFILE_TITLE = "Profile:"
STABLE_TITLE = "Long-lived memories, oldest first:"
QUERY_TITLE = "Memories that match the latest message:"
DEFAULT_BUDGET_TOKENS = 1500


@dataclass(frozen=True)
class Section:
    """One titled part of the message: its title, its memory lines (block.py's) and the
    ids of the memories they show."""

    title: str
    lines: tuple[str, ...]
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Injection:
    """Engram's system message (None when there is nothing to remember), what it holds,
    and with the split placement a second one, the query's memories, put just before
    the latest user message (None otherwise)."""

    message: dict[str, Any] | None
    sections: tuple[Section, ...]
    late: dict[str, Any] | None = None

    @property
    def count(self) -> int:
        return sum(len(s.ids) for s in self.sections)


def hit_of(record: Record) -> Hit:
    """A listed memory as the block renders it (time order: every score the same)."""
    return Hit(id=record.id, text=record.text, kind=record.kind, score=1.0, sources=record.sources,
               session_id=record.session_id, created_at=record.created_at, valid_to=record.valid_to,
               metadata=record.metadata, role=record.role, name=record.name)


def section(title: str, hits: Sequence[Hit], budget_tokens: int, query: str = "") -> Section | None:
    """Hits (in the order given) rendered within `budget_tokens` as a titled section, or
    None when none fits."""
    if not hits or budget_tokens < MIN_BUDGET_TOKENS:
        return None
    text, shown, _ = assemble(hits, budget_tokens, query)
    return rendered(title, text, shown)


def rendered(title: str, text: str, shown: Sequence[Hit]) -> Section | None:
    """A block block.py rendered (`recall().text`) as a titled section, or None when empty."""
    if not shown or not text:
        return None
    lines = text.split("\n")
    assert lines[0] == PREAMBLE  # block.render's first line; the message has it once
    return Section(title, tuple(lines[1:]), tuple(h.id for h in shown))


def profile_section(profile: Any) -> Section | None:
    """`Memory.profile()`'s block (living/profile.py renders it over block.py) as the
    first section: its lines, without its own preamble line (the message has one)."""
    if profile is None or not profile.text or not profile.items:
        return None
    return Section(PROFILE_TITLE, tuple(profile.text.split("\n")[1:]), tuple(i.memory_id for i in profile.items))


def stable_budget(budget_tokens: int) -> int:
    return int(budget_tokens * STABLE_SHARE)


def budget_used(part: Section) -> int:
    """The tokens a section takes in the message, its title included."""
    return estimate_tokens("\n".join((part.title, *part.lines)))


def query_budget(budget_tokens: int, used: Sequence[Section]) -> int:
    """What is left for the query's memories once the stable sections are laid out."""
    return budget_tokens - estimate_tokens(PREAMBLE) - sum(budget_used(s) for s in used)


def not_in_conversation(hits: Sequence[Hit], messages: Sequence[Mapping[str, Any]]) -> list[Hit]:
    """Hits whose text the request's own messages already say (the earlier turns of this
    conversation, stored by the proxy as they went by) are left out: the model has them."""
    said = {same_text_key(text) for text in (message_text(m) for m in messages) if text}
    return [h for h in hits if same_text_key(h.text) not in said]


def system_message(sections: Sequence[Section | None], *, split: bool = False) -> Injection:
    """The system message: the block's preamble, then each section that has lines. With
    `split`, the query's section is a message of its own (`Injection.late`)."""
    kept = tuple(s for s in sections if s is not None and s.lines)
    if not kept:
        return Injection(None, ())
    if split:
        early = [s for s in kept if s.title != QUERY_TITLE]
        late = [s for s in kept if s.title == QUERY_TITLE]
        return Injection(_message(early) if early else None, kept, _message(late) if late else None)
    return Injection(_message(kept), kept)


def _message(sections: Sequence[Section]) -> dict[str, Any]:
    parts = [PREAMBLE]
    for part in sections:
        parts.append(part.title)
        parts.extend(part.lines)
    return {"role": "system", "content": "\n".join(parts)}


def insert(messages: Sequence[Mapping[str, Any]], injection: Injection) -> list[dict[str, Any]]:
    """`messages` with Engram's message after the caller's own leading system (or
    developer) messages: their prompt stays the prefix, Engram's stable part follows.
    A split injection's second message goes just before the latest user message, so a
    prefix cache also keeps the conversation up to it from one turn to the next."""
    out = [dict(m) for m in messages]
    at = 0
    while at < len(out) and out[at].get("role") in ("system", "developer"):
        at += 1
    last = max((i for i, m in enumerate(out) if m.get("role") == "user"), default=len(out))
    early = [] if injection.message is None else [dict(injection.message)]
    late = [] if injection.late is None else [dict(injection.late)]
    return out[:at] + early + out[at:last] + late + out[last:]


def latest_user_turn(messages: Sequence[Any]) -> Mapping[str, Any] | None:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message
    return None


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text: its content string, or the text parts of a content list."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content
                         if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""
