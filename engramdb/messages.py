"""Turn what callers pass to add() into validated Messages, or raise InvalidInputError."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .clock import format_ts, normalize_ts
from .errors import InvalidInputError

ROLES = frozenset({"user", "assistant", "system", "tool", "event"})
KNOWN_KEYS = frozenset({"role", "content", "id", "name", "timestamp"})


def normalize(messages: Any, *, now: datetime, max_chars: int, max_messages: int) -> list:
    """Validate `messages` (a string, a dict or a list of them) into Message objects."""
    from .types import Message  # local: keeps the module graph acyclic

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
    for index, item in enumerate(items):
        where = f"messages[{index}]"
        if isinstance(item, str):
            item = {"role": "user", "content": item}
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"{where} must be a string or a dict, got {type(item).__name__}")
        unknown = set(item) - KNOWN_KEYS
        if unknown:
            raise InvalidInputError(f"{where} has unknown keys: {sorted(unknown)}")
        role = item.get("role", "user")
        if role not in ROLES:
            raise InvalidInputError(f"{where}.role must be one of {sorted(ROLES)}, got {role!r}")
        content = item.get("content")
        if not isinstance(content, str):
            raise InvalidInputError(f"{where}.content must be a string, got {type(content).__name__}")
        if not content.strip():
            raise InvalidInputError(f"{where}.content is empty")
        if len(content) > max_chars:
            raise InvalidInputError(f"{where}.content has {len(content)} characters; the limit is {max_chars}")
        if "\x00" in content:
            raise InvalidInputError(f"{where}.content contains a NUL character")
        source_id = _optional_str(item.get("id"), f"{where}.id")
        if source_id is not None:
            if source_id in seen_ids:
                raise InvalidInputError(f"{where}.id {source_id!r} appears twice in one add()")
            seen_ids.add(source_id)
        name = _optional_str(item.get("name"), f"{where}.name")
        ts = item.get("timestamp")
        timestamp = default_ts if ts is None else normalize_ts(ts, field=f"{where}.timestamp")
        out.append(Message(role=role, content=content, timestamp=timestamp, source_id=source_id, name=name))
    return out


def _optional_str(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInputError(f"{field} must be a string, got {type(value).__name__}")
    text = str(value)
    if not text.strip() or len(text) > 256:
        raise InvalidInputError(f"{field} must be 1-256 characters")
    return text
