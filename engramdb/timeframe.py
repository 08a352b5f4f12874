"""Dates a query names, as windows of time to match memories against.

"What did Maria donate in December 2023?", "… on 7 July, 2023?", "… in June?": an
explicit day, month or year, with or without the year, becomes a `Timeframe`. A
memory matches when it was said inside the window or within `GRACE` after it (people
talk about an event in the days after it happened). Relative phrases ("last week")
need a reference point the query does not give, so they are left alone.

Pure functions of the query text: no clock, no locale."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .clock import parse_ts
from .types import Record, ScoredId

GRACE = timedelta(days=7)
MAX_SHARE = 0.5  # a window that holds more of the candidates than this does not discriminate

_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS |= {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_MONTH = r"(January|February|March|April|May|June|July|August|September|October|November|December|" \
         r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
_YEAR = r"((?:19|20)\d\d)"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_PATTERNS = [  # most specific first; each match is blanked out before the next pattern runs
    ("day", re.compile(rf"\b{_DAY} (?:of )?{_MONTH},? {_YEAR}\b"), ("d", "m", "y")),
    ("day", re.compile(rf"\b{_MONTH} {_DAY},? {_YEAR}\b"), ("m", "d", "y")),
    ("month", re.compile(rf"\b{_MONTH},? {_YEAR}\b"), ("m", "y")),
    ("year", re.compile(rf"\b(?:in|of|during|since|by|from) {_YEAR}\b"), ("y",)),
    ("month", re.compile(rf"(?<!^)(?<![.?!] )\b{_MONTH}\b(?! \d)"), ("m",)),  # "in June"; not "May I…"
]


@dataclass(frozen=True)
class Timeframe:
    """A window [start, end) in UTC; `month` alone (start None) means that month of any year."""

    start: datetime | None
    end: datetime | None
    month: int | None = None

    def contains(self, when: datetime, grace: timedelta = GRACE) -> bool:
        if self.start is not None and self.end is not None:
            return self.start <= when < self.end + grace
        assert self.month is not None
        shifted = when - grace  # said up to `grace` after the month ended
        return when.month == self.month or shifted.month == self.month


def timeframes(query: str) -> list[Timeframe]:
    """Every explicit date the query names, most specific first."""
    found: list[Timeframe] = []
    text = query
    for unit, pattern, fields in _PATTERNS:
        for match in pattern.finditer(text):
            parts = dict(zip(fields, match.groups()))
            frame = _frame(unit, parts)
            if frame is not None:
                found.append(frame)
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return found


def matches(frames: list[Timeframe], created_at: str) -> bool:
    """Whether a memory said at `created_at` (ISO 8601) falls in any of the frames."""
    when = parse_ts(created_at)
    return any(frame.contains(when) for frame in frames)


def window_ranking(ranked: Sequence[ScoredId], records: Mapping[int, Record], frames: Sequence[Timeframe],
                   max_share: float = MAX_SHARE) -> list[ScoredId]:
    """The candidates said inside the query's time frames, in their current order; empty
    when the query names no date or the frames do not single out a minority."""
    if not frames or not ranked:
        return []
    inside = [item for item in ranked if item.rowid in records and matches(frames, records[item.rowid].created_at)]
    return inside if len(inside) <= max_share * len(ranked) else []


def _frame(unit: str, parts: dict[str, str]) -> Timeframe | None:
    month = _month(parts["m"]) if "m" in parts else None
    if "m" in parts and month is None:
        return None
    year = int(parts["y"]) if "y" in parts else None
    try:
        if unit == "day":
            start = datetime(year, month, int(parts["d"]), tzinfo=timezone.utc)
            return Timeframe(start, start + timedelta(days=1))
        if unit == "month" and year is not None:
            start = datetime(year, month, 1, tzinfo=timezone.utc)
            return Timeframe(start, _add_month(start))
        if unit == "year":
            return Timeframe(datetime(year, 1, 1, tzinfo=timezone.utc), datetime(year + 1, 1, 1, tzinfo=timezone.utc))
        if unit == "month":
            return Timeframe(None, None, month=month)
    except (TypeError, ValueError):  # "31 February, 2023"
        return None
    return None


def _month(name: str) -> int | None:
    name = name.lower().rstrip(".")
    return _MONTHS.get("sep" if name == "sept" else name)


def _add_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
