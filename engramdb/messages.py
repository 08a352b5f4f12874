"""Turn what callers pass to add() into validated Messages, or raise InvalidInputError."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .clock import format_ts, normalize_ts
from .errors import InvalidInputError
from .types import Message, _check_id, check_text

ROLE_ORDER = ("user", "assistant", "system", "tool", "event")  # the one list of roles (REST, MCP and CLI use it)
ROLES = frozenset(ROLE_ORDER)
KNOWN_KEYS = frozenset({"role", "content", "id", "name", "timestamp"})


@dataclass(frozen=True)
class Batch:
    """The validated turns of one add(), and how many empty ones were left out."""

    messages: list[Message]
    skipped: int = 0


def normalize(messages: Any, *, now: datetime, max_chars: int, max_messages: int) -> list[Message]:
    """Validate `messages` (a string, a dict or a list of them) into Message objects."""
    return read_batch(messages, now=now, max_chars=max_chars, max_messages=max_messages).messages


def read_batch(messages: Any, *, now: datetime, max_chars: int, max_messages: int, skip_empty: bool = False,
               origins: Sequence[str] | None = None) -> Batch:
    """Validate every message before any is kept. With `skip_empty`, a turn whose content
    is empty or only whitespace is left out and counted (chat exports hold such turns);
    anything else wrong with it still refuses the whole batch. `origins` says where each
    message came from (e.g. "chat.jsonl line 12"), added to its errors."""
    if isinstance(messages, (str, Mapping)):
        items = [messages]
    elif isinstance(messages, (list, tuple)):
        items = list(messages)
    else:
        raise InvalidInputError(
            f"messages must be a string, a dict or a list of them, got {type(messages).__name__}"
        )
    if not items:
        raise InvalidInputError("messages is empty")
    if len(items) > max_messages:
        raise InvalidInputError(f"at most {max_messages} messages per add(), got {len(items)}")
    default_ts = format_ts(now)
    out: list[Message] = []
    seen_ids: set[str] = set()
    skipped = 0
    for index, item in enumerate(items):
        try:
            message = _message(item, f"messages[{index}]", default_ts, max_chars, seen_ids, skip_empty)
        except InvalidInputError as exc:
            if origins is None or index >= len(origins):
                raise
            raise InvalidInputError(f"{exc} ({origins[index]})") from None
        if message is None:
            skipped += 1
        else:
            out.append(message)
    return Batch(out, skipped)


def _message(item: Any, where: str, default_ts: str, max_chars: int, seen_ids: set[str],
             skip_empty: bool) -> Message | None:
    """One validated message, or None for an empty turn that `skip_empty` leaves out."""
    if isinstance(item, str):
        item = {"role": "user", "content": item}
    if not isinstance(item, Mapping):
        raise InvalidInputError(f"{where} must be a string or a dict, got {type(item).__name__}")
    unknown = set(item) - KNOWN_KEYS
    if unknown:
        raise InvalidInputError(f"{where} has unknown keys: {', '.join(sorted(map(repr, unknown)))}")
    role = item.get("role", "user")
    if role not in ROLES:
        raise InvalidInputError(f"{where}.role must be one of {sorted(ROLES)}, got {role!r}")
    content = item.get("content")
    if not isinstance(content, str):
        raise InvalidInputError(f"{where}.content must be a string, got {type(content).__name__}")
    empty = not content.strip()
    if empty and not skip_empty:
        raise InvalidInputError(f"{where}.content is empty")
    if len(content) > max_chars:
        raise InvalidInputError(f"{where}.content has {len(content)} characters; the limit is {max_chars}")
    if "\x00" in content:
        raise InvalidInputError(f"{where}.content contains a NUL character")
    check_text(f"{where}.content", content)
    source_id = _check_id(f"{where}.id", item.get("id"), required=False)
    if source_id is not None:
        if source_id in seen_ids:
            raise InvalidInputError(f"{where}.id {source_id!r} appears twice in one add()")
        seen_ids.add(source_id)
    name = _check_id(f"{where}.name", item.get("name"), required=False)
    ts = item.get("timestamp")
    timestamp = default_ts if ts is None else normalize_ts(ts, field=f"{where}.timestamp")
    if empty:
        return None
    return Message(role=role, content=content, timestamp=timestamp, source_id=source_id, name=name)
