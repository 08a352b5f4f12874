"""The one filter format, validated once and compiled per store.

    {"kind": "turn", "role": {"in": ["user", "assistant"]},
     "created_at": {"gte": "2024-01-01", "lt": "2024-02-01"},
     "metadata.topic": "travel", "source": "m1", "flagged": False}

Conditions are ANDed. Scope keys (user_id, tenant) are not filters: the store applies
the scope itself, so no filter can widen what a caller sees.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..clock import normalize_ts
from ..errors import InvalidInputError

COLUMNS = {"kind", "role", "name", "session_id", "agent_id", "created_at", "valid_to", "id", "state"}
TIME_COLUMNS = {"created_at", "valid_to"}
OPERATORS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "in": "IN", "nin": "NOT IN"}
_META_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
Scalar = (str, int, float, bool)


FLAGGED = "metadata.flagged"  # guard.METADATA_KEY: the reason a turn was flagged as carrying instructions
VALID_AT = "valid_at"  # internal: true in the world at a time (search's as_of), never parsed from filters


def valid_at(timestamp: str) -> "Condition":
    """What was true at `timestamp`: said or valid from before it, not yet ended then."""
    return Condition(VALID_AT, "eq", timestamp)


def current() -> "Condition":
    """What is true now: never superseded or retracted."""
    return Condition("valid_to", "eq", None)


def unarchived() -> "Condition":
    """Not archived by decay (living/vitals.py): what search and list give by default."""
    return Condition("state", "ne", "archived")


@dataclass(frozen=True)
class Condition:
    field: str  # a column, "metadata.<key>" or "source"
    op: str  # a key of OPERATORS
    value: Any


def parse(filters: Mapping[str, Any] | None) -> list[Condition]:
    if filters is None:
        return []
    if not isinstance(filters, Mapping):
        raise InvalidInputError(f"filters must be a dict, got {type(filters).__name__}")
    out: list[Condition] = []
    for field, spec in filters.items():
        if not isinstance(field, str):
            raise InvalidInputError("filter keys must be strings")
        if field == "flagged":  # {"flagged": True}: flagged memories only; False: none of them; "override": that reason
            out.extend(_flagged(spec))
            continue
        if field.startswith("metadata."):
            if not _META_KEY.match(field[len("metadata."):]):
                raise InvalidInputError(f"bad metadata filter key {field!r}")
        elif field not in COLUMNS and field != "source":
            raise InvalidInputError(
                f"cannot filter on {field!r}; use one of {sorted(COLUMNS | {'source', 'flagged'})} or metadata.<key>"
            )
        ops = spec if isinstance(spec, Mapping) else {"eq": spec}
        if not ops:
            raise InvalidInputError(f"filter on {field!r} is empty")
        for op, value in ops.items():
            if op not in OPERATORS:
                raise InvalidInputError(f"unknown filter operator {op!r}; use one of {sorted(OPERATORS)}")
            if field == "source" and op != "eq":
                raise InvalidInputError("the source filter only supports equality")
            out.append(Condition(field, op, _check_value(field, op, value)))
    return out


def _flagged(spec: Any) -> list[Condition]:
    if spec is True:
        return [Condition(FLAGGED, "ne", None)]
    if spec is False:
        return [Condition(FLAGGED, "eq", None)]
    if isinstance(spec, str) and spec:
        return [Condition(FLAGGED, "eq", spec)]
    raise InvalidInputError("the flagged filter takes true, false or a reason (e.g. \"override\")")


def _check_value(field: str, op: str, value: Any) -> Any:
    if op in ("in", "nin"):
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, Scalar) for v in value):
            raise InvalidInputError(f"filter {field}.{op} needs a non-empty list of values")
        return [normalize_ts(v, field=field) if field in TIME_COLUMNS else v for v in value]
    if value is None and op in ("eq", "ne"):
        return None
    if not isinstance(value, Scalar):
        raise InvalidInputError(f"filter value for {field!r} must be a string, number or boolean")
    return normalize_ts(value, field=field) if field in TIME_COLUMNS else value


def to_sql(conditions: list[Condition], alias: str = "r") -> tuple[str, list[Any]]:
    """SQL (SQLite dialect) for the conditions, ANDed, with its parameters."""
    parts: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        if cond.field == "source":
            parts.append(f"EXISTS (SELECT 1 FROM json_each({alias}.sources) WHERE value = ?)")
            params.append(str(cond.value))
            continue
        if cond.field == VALID_AT:
            parts.append(f"({alias}.created_at <= ? AND ({alias}.valid_to IS NULL OR {alias}.valid_to > ?))")
            params.extend([cond.value, cond.value])
            continue
        if cond.field.startswith("metadata."):
            column = f"json_extract({alias}.metadata, ?)"
            params.append("$." + cond.field[len("metadata."):])
        else:
            column = f"{alias}.{cond.field}"
        sql_op = OPERATORS[cond.op]
        if cond.op in ("in", "nin"):
            parts.append(f"{column} {sql_op} ({', '.join('?' * len(cond.value))})")
            params.extend(cond.value)
        elif cond.value is None:
            parts.append(f"{column} IS {'NOT ' if cond.op == 'ne' else ''}NULL")
        else:
            parts.append(f"{column} {sql_op} ?")
            params.append(cond.value)
    return " AND ".join(parts), params


def to_postgres(conditions: list[Condition], alias: str = "r") -> tuple[str, list[Any]]:
    """SQL (PostgreSQL dialect, %s placeholders) for the conditions, ANDed, with its
    parameters. Columns are TEXT and compare as text; metadata values compare as JSON
    (1 equals 1.0, a string never equals a number); a missing key or a JSON null is NULL."""
    parts: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        if cond.field == "source":
            parts.append(f"{alias}.sources @> jsonb_build_array(%s::text)")
            params.append(str(cond.value))
        elif cond.field == VALID_AT:
            parts.append(f"({alias}.created_at <= %s AND ({alias}.valid_to IS NULL OR {alias}.valid_to > %s))")
            params.extend([cond.value, cond.value])
        elif cond.field.startswith("metadata."):
            part, values = _pg_metadata(alias, cond)
            parts.append(part)
            params.extend(values)
        else:
            column, sql_op = f"{alias}.{cond.field}", OPERATORS[cond.op]
            if cond.op in ("in", "nin"):
                parts.append(f"{column} {sql_op} ({', '.join(['%s'] * len(cond.value))})")
                params.extend(_pg_text(v) for v in cond.value)
            elif cond.value is None:
                parts.append(f"{column} IS {'NOT ' if cond.op == 'ne' else ''}NULL")
            else:
                parts.append(f"{column} {sql_op} %s")
                params.append(_pg_text(cond.value))
    return " AND ".join(parts), params


def _pg_text(value: Any) -> str:
    """A filter value as SQLite compares it with a TEXT column (True is 1)."""
    return str(int(value)) if isinstance(value, bool) else str(value)


def _pg_metadata(alias: str, cond: Condition) -> tuple[str, list[Any]]:
    """One metadata condition, comparing the JSONB value under the key."""
    key = cond.field[len("metadata."):]
    item, sql_op = f"{alias}.metadata -> %s", OPERATORS[cond.op]
    if cond.op in ("in", "nin"):
        marks = ", ".join(["%s::jsonb"] * len(cond.value))
        return f"{item} {sql_op} ({marks})", [key, *(json.dumps(v) for v in cond.value)]
    if cond.value is None:
        return f"coalesce({item}, 'null'::jsonb) {'<>' if cond.op == 'ne' else '='} 'null'::jsonb", [key]
    if cond.op in ("eq", "ne") or isinstance(cond.value, bool):
        return f"{item} {sql_op} %s::jsonb", [key, json.dumps(cond.value)]
    # Order strings as text and numbers as numbers, never one against the other.
    kind, cast = ("string", "") if isinstance(cond.value, str) else ("number", "::numeric")
    return (
        f"(CASE WHEN jsonb_typeof({item}) = '{kind}' THEN ({alias}.metadata ->> %s){cast} END) {sql_op} %s",
        [key, key, cond.value],
    )


def describe(conditions: list[Condition]) -> str:
    return json.dumps([c.__dict__ for c in conditions], default=str)
