"""Dates a turn names, resolved against when the turn was said.

"I went to a support group yesterday", said on 8 May 2023, happened on 7 May 2023.
`find(text, anchor)` returns every time expression in the text with the span of days
it stands for: relative ones ("yesterday", "last Tuesday", "two weeks ago", "last May",
"next month", "last summer") resolved here, explicit ones ("7 May 2023", "in 2023",
"in June") through `timeframe.timeframes`, the parser the query side uses.

Conventions (documented, since English is ambiguous): "last Tuesday" is the latest
Tuesday strictly before the anchor day, "next Tuesday" the first one strictly after;
weeks run Monday to Sunday; "this weekend" is the coming (or current) one and "next
weekend" the one after it; "N weeks ago" is the week that holds the day N weeks back;
"last summer" is the latest summer that ended before the
anchor; seasons are the northern meteorological ones; a bare month ("in June") is the
latest June not after the anchor, or the next one when `future` is set. Vague words
("recently", "a while ago") resolve to nothing."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ..timeframe import timeframes

_MONTH_NAMES = [m for m in calendar.month_name if m]
_MONTH_NUMBER = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTH_NUMBER |= {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_MONTH_NUMBER["sept"] = 9
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}  # first month
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "couple of": 2,
            "a couple": 2, "a few": 3, "few": 3}


@dataclass(frozen=True)
class DateSpan:
    """Days [start, end], both inclusive, and how precise the expression was."""

    start: date
    end: date
    precision: str  # "day", "days", "week", "weekend", "month", "season", "year"
    approximate: bool = False  # "a few days ago"

    @property
    def when(self) -> str:
        return self.start.isoformat()

    @property
    def when_end(self) -> str | None:
        return None if self.start == self.end else self.end.isoformat()

    def describe(self) -> str:
        """A phrase that stands in for the relative expression: 'on 7 May 2023'."""
        s, e = self.start, self.end
        about = "around " if self.approximate else ""
        if self.precision == "day" or s == e:
            return f"{about or 'on '}{_day(s)}"
        if self.precision == "month":
            return f"in {calendar.month_name[s.month]} {s.year}"
        if self.precision == "year":
            return f"in {s.year}"
        if self.precision == "season":
            name = next(n for n, m in _SEASONS.items() if m == s.month and n != "autumn")
            return f"in {name} {s.year}" if s.month != 12 else f"in winter {s.year}/{e.year % 100:02d}"
        if self.precision == "weekend":
            return f"on the weekend of {_day(s)}"
        if self.precision == "week":
            return f"in the week of {_day(s)}"
        return f"between {_day(s)} and {_day(e)}"


@dataclass(frozen=True)
class TimeMention:
    start: int  # character offsets in the text
    end: int
    text: str
    span: DateSpan
    relative: bool  # True when the text means nothing without the anchor


def _day(d: date) -> str:
    return f"{d.day} {calendar.month_name[d.month]} {d.year}"


_NUM = r"(\d{1,2}|a couple of|couple of|a couple|a few|few|an?|one|two|three|four|five|six|seven|eight|nine|ten|" \
       r"eleven|twelve)"
_UNIT = r"(day|week|month|year)s?"
_WEEKDAY = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MONTHS = r"(?-i:(January|February|March|April|May|June|July|August|September|October|November|December))"
_SEASON = r"(spring|summer|autumn|fall|winter)"
_RULES: list[tuple[str, re.Pattern[str]]] = [(name, re.compile(pattern, re.IGNORECASE)) for name, pattern in [
    ("day_before_yesterday", r"\bthe day before yesterday\b"),
    ("day_after_tomorrow", r"\bthe day after tomorrow\b"),
    ("ago", rf"\b{_NUM} {_UNIT} ago\b"),
    ("in_n", rf"\bin {_NUM} {_UNIT}(?! ago)\b"),
    ("weekday", rf"\b(last|this past|next|this) {_WEEKDAY}\b"),
    ("month_of_year", rf"\b{_MONTHS}(?: of)? (last|next|this) year\b"),
    ("period", r"\b(last|this past|past|next|this|earlier this|later this) (week|weekend|month|year)\b"),
    ("over_weekend", r"\bover the weekend\b"),
    ("season", rf"\b(last|this past|next|this) {_SEASON}\b"),
    ("month", rf"\b(last|next|this) {_MONTHS}\b"),
    ("yesterday", r"\b(yesterday|last night)\b"),
    ("today", r"\b(today|tonight|this morning|this afternoon|this evening)\b"),
    ("tomorrow", r"\btomorrow\b"),
    ("other_day", r"\bthe other day\b"),
    ("bare_weekday", rf"\bon {_WEEKDAY}\b"),
]]


def find(text: str, anchor: datetime | date, *, future: bool = False) -> list[TimeMention]:
    """Every time expression of `text`, in order of appearance. `future` says the text
    looks forward ("I'm going to…"), which decides bare weekdays and months."""
    day = anchor.date() if isinstance(anchor, datetime) else anchor
    found: list[TimeMention] = []
    taken = [False] * len(text)
    for name, pattern in _RULES:
        for match in pattern.finditer(text):
            if any(taken[match.start():match.end()]):
                continue
            span = _resolve(name, match, day, future)
            if span is None:
                continue
            found.append(TimeMention(match.start(), match.end(), match.group(0), span, relative=True))
            taken[match.start():match.end()] = [True] * (match.end() - match.start())
    rest = "".join(" " if t else c for c, t in zip(text, taken))
    for frame, (start, end) in _explicit(rest):
        span = _from_frame(frame, day, future)
        if span is not None:
            found.append(TimeMention(start, end, text[start:end], span, relative=frame.start is None))
    return sorted(found, key=lambda m: m.start)


def resolve(expression: str, anchor: datetime | date, *, future: bool = False) -> DateSpan | None:
    """The span of one expression ("last Tuesday"), or None when it names no time."""
    mentions = find(expression, anchor, future=future)
    return mentions[0].span if mentions else None


def _resolve(name: str, m: re.Match[str], day: date, future: bool) -> DateSpan | None:
    g = [x.lower() if x else x for x in m.groups()]
    if name == "yesterday":
        return _one(day - timedelta(days=1))
    if name == "today":
        return _one(day)
    if name == "tomorrow":
        return _one(day + timedelta(days=1))
    if name == "day_before_yesterday":
        return _one(day - timedelta(days=2))
    if name == "day_after_tomorrow":
        return _one(day + timedelta(days=2))
    if name == "other_day":
        return DateSpan(day - timedelta(days=7), day - timedelta(days=1), "days", approximate=True)
    if name in ("ago", "in_n"):
        count, unit = _count(g[0]), g[1]
        sign = -1 if name == "ago" else 1
        fuzzy = g[0] in ("a few", "few")
        return _shift(day, sign * count, unit, fuzzy)
    if name == "month_of_year":
        return _month_span(day.year + {"last": -1, "next": 1}.get(g[1], 0), _MONTH_NUMBER[g[0]])
    if name == "weekday":
        direction, weekday = g[0], _WEEKDAYS[g[1]]
        if direction in ("last", "this past"):
            return _one(_previous_weekday(day, weekday))
        if direction == "next":
            return _one(_next_weekday(day, weekday))
        monday = day - timedelta(days=day.weekday())  # "this Tuesday": the one of this week
        return _one(monday + timedelta(days=weekday))
    if name == "bare_weekday":
        weekday = _WEEKDAYS[g[0]]
        if weekday == day.weekday():
            return _one(day)
        return _one(_next_weekday(day, weekday) if future else _previous_weekday(day, weekday))
    if name == "period":
        return _period(g[0], g[1], day)
    if name == "over_weekend":
        return _weekend(day, 0 if day.weekday() >= 5 else -1)
    if name == "season":
        return _season(g[0], g[1], day)
    if name == "month":
        month = _MONTH_NUMBER[g[1]]
        if g[0] == "last":
            year = day.year if month < day.month else day.year - 1
        elif g[0] == "next":
            year = day.year if month > day.month else day.year + 1
        else:
            year = day.year
        return _month_span(year, month)
    return None


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word]


def _one(d: date) -> DateSpan:
    return DateSpan(d, d, "day")


def _shift(day: date, n: int, unit: str, fuzzy: bool) -> DateSpan:
    if unit == "day":
        target = day + timedelta(days=n)
        if fuzzy:  # "a few days ago": two to five days
            near, far = day + timedelta(days=2 if n > 0 else -2), day + timedelta(days=5 if n > 0 else -5)
            return DateSpan(min(near, far), max(near, far), "days", approximate=True)
        return _one(target)
    if unit == "week":
        target = day + timedelta(weeks=n)
        monday = target - timedelta(days=target.weekday())
        return DateSpan(monday, monday + timedelta(days=6), "week", approximate=fuzzy)
    if unit == "month":
        year, month = _add_months(day.year, day.month, n)
        span = _month_span(year, month)
        return DateSpan(span.start, span.end, "month", approximate=fuzzy)
    year = day.year + n
    return DateSpan(date(year, 1, 1), date(year, 12, 31), "year", approximate=fuzzy)


def _period(direction: str, unit: str, day: date) -> DateSpan:
    offset = {"last": -1, "this past": -1, "past": -1, "next": 1}.get(direction, 0)
    if unit == "weekend":
        if direction in ("last", "this past", "past"):
            return _weekend(day, 0 if day.weekday() == 6 else -1)
        return _weekend(day, offset)  # "this weekend": the coming (or current) one; "next weekend": the one after
    if unit == "week":
        monday = day - timedelta(days=day.weekday()) + timedelta(weeks=offset)
        if direction == "earlier this":
            return DateSpan(monday, max(monday, day - timedelta(days=1)), "week")
        if direction == "later this":
            return DateSpan(min(day + timedelta(days=1), monday + timedelta(days=6)), monday + timedelta(days=6),
                            "week")
        return DateSpan(monday, monday + timedelta(days=6), "week")
    if unit == "month":
        year, month = _add_months(day.year, day.month, offset)
        span = _month_span(year, month)
        if direction == "earlier this":
            return DateSpan(span.start, max(span.start, day - timedelta(days=1)), "month")
        if direction == "later this":
            return DateSpan(min(day + timedelta(days=1), span.end), span.end, "month")
        return span
    year = day.year + offset
    if direction == "earlier this":
        return DateSpan(date(year, 1, 1), max(date(year, 1, 1), day - timedelta(days=1)), "year")
    if direction == "later this":
        return DateSpan(min(day + timedelta(days=1), date(year, 12, 31)), date(year, 12, 31), "year")
    return DateSpan(date(year, 1, 1), date(year, 12, 31), "year")


def _weekend(day: date, weeks: int) -> DateSpan:
    saturday = day - timedelta(days=day.weekday()) + timedelta(days=5, weeks=weeks)
    return DateSpan(saturday, saturday + timedelta(days=1), "weekend")


def _season(direction: str, name: str, day: date) -> DateSpan:
    first = _SEASONS[name]

    def span(year: int) -> DateSpan:  # the season starting in `year`
        start = date(year, first, 1)
        end_year, end_month = _add_months(year, first, 2)
        return DateSpan(start, _month_span(end_year, end_month).end, "season")

    candidates = [span(y) for y in range(day.year - 2, day.year + 2)]
    if direction in ("last", "this past"):
        return [s for s in candidates if s.end < day][-1]
    if direction == "next":
        return [s for s in candidates if s.start > day][0]
    current = [s for s in candidates if s.start <= day <= s.end]  # "this summer": the one we are in
    if current:
        return current[0]
    return [s for s in candidates if s.start > day][0] if direction == "this" else candidates[-1]


def _previous_weekday(day: date, weekday: int) -> date:
    return day - timedelta(days=(day.weekday() - weekday - 1) % 7 + 1)


def _next_weekday(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday() - 1) % 7 + 1)


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def _month_span(year: int, month: int) -> DateSpan:
    return DateSpan(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]), "month")


_MONTH_RE = "(?:" + "|".join(_MONTH_NAMES) + r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\b\.?"
_EXPLICIT = re.compile(rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)? (?:of )?)?{_MONTH_RE}(?: \d{{1,2}}(?:st|nd|rd|th)?\b)?"
                       rf"(?:,? (?:19|20)\d\d\b)?|\b(?:in|of|during|since|by|from) (?:19|20)\d\d\b")


def _explicit(text: str):
    """Explicit dates, parsed by the query side's `timeframes` one at a time so that
    each keeps its place in the text (its own rules decide, e.g. that "May I…" is no date)."""
    for match in _EXPLICIT.finditer(text):
        before = max(0, match.start() - 2)
        masked = " " * before + text[before:match.end() + 2]
        frames = timeframes(masked)
        if frames:
            yield frames[0], (match.start(), match.end())


def _from_frame(frame, day: date, future: bool) -> DateSpan | None:
    if frame.start is not None and frame.end is not None:
        start = frame.start.date()
        end = (frame.end - timedelta(days=1)).date()
        length = (end - start).days
        precision = "day" if length == 0 else "month" if length < 32 else "year"
        return DateSpan(start, end, precision)
    month = frame.month
    if month is None:
        return None
    if future:
        year = day.year if month >= day.month else day.year + 1
    else:
        year = day.year if month <= day.month else day.year - 1
    return _month_span(year, month)
