"""Time: the Clock seam, and the one timestamp format Engram stores.

Timestamps are stored as fixed-width UTC ISO 8601 strings
(``2024-06-02T10:00:00.000000Z``) so that text order is time order.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol

from .errors import InvalidInputError


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


def format_ts(moment: datetime) -> str:
    """Render an aware datetime as Engram's stored UTC form: always four digits of year
    (strftime's %Y gives "1" for the year 1 on glibc, which would break text order)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    m = moment.astimezone(timezone.utc)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"


def parse_ts(value: object, *, field: str = "timestamp") -> datetime:
    """Parse an ISO 8601 string (or datetime) into an aware UTC datetime.

    Naive values are taken as UTC. Anything else raises InvalidInputError.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInputError(f"{field} must be ISO 8601, got {value!r}") from None
    else:
        raise InvalidInputError(f"{field} must be an ISO 8601 string, got {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise InvalidInputError(f"{field} {value!r} is out of range once converted to UTC (years 1-9999)") from None


def normalize_ts(value: object, *, field: str = "timestamp") -> str:
    return format_ts(parse_ts(value, field=field))
