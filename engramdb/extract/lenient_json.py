"""Reading JSON from a model that was asked for JSON: code fences, chatter before and
after, single quotes, trailing commas and Python literals are forgiven; anything else
raises ValueError with a message worth showing the model in a repair request."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def loads(text: str) -> Any:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the reply is empty")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    errors = []
    for candidate in candidates:
        block = _outermost(candidate)
        if block is None:
            continue
        for attempt in (block, _TRAILING_COMMA.sub(r"\1", block)):
            try:
                return json.loads(attempt)
            except ValueError as exc:
                errors.append(str(exc))
        try:  # single quotes, True/False/None: a Python literal
            value = ast.literal_eval(_TRAILING_COMMA.sub(r"\1", block).replace("null", "None")
                                     .replace("true", "True").replace("false", "False"))
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            errors.append(f"not JSON: {exc.__class__.__name__}")
            continue
        if isinstance(value, (dict, list)):
            return value
    if not errors:
        raise ValueError("no JSON object or array in the reply")
    raise ValueError(errors[0])


def _outermost(text: str) -> str | None:
    """The first balanced {...} or [...] in `text`, minding strings."""
    start = next((i for i, c in enumerate(text) if c in "{["), None)
    if start is None:
        return None
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = None
            continue
        if c in "\"'":
            quote = c
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]":
            if not stack or stack.pop() != c:
                return None
            if not stack:
                return text[start:i + 1]
    return None
