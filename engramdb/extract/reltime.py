"""Dates a turn names, resolved against when the turn was said and the way it looks.

"I went to a support group yesterday", said on 8 May 2023, happened on 7 May 2023.
`find(text, anchor)` returns every time expression in the text with the span of days
it stands for: relative ones ("yesterday", "last Tuesday", "two weeks ago", "last May",
"next month", "last summer", "on Friday", "in May", "October 12") resolved here, explicit
ones ("7 May 2023", "in 2023") through `timeframe.timeframes`, the parser the query side
uses. `recurrences(text)` returns what repeats ("every Tuesday", "on Tuesday evenings",
"twice a week", "each summer"): those name no one date, and `find` leaves them alone.

Some expressions mean different days by tense (see `tense`): "in May" said in March is
this May in a plan ("I'm moving in May") and last May in the past tense ("I moved in
May"); "on Friday" is the coming Friday in a plan and the last one in the past tense; "in
three days" is a date ahead, except after the perfect ("we haven't talked in a few
days": no date at all). The tense comes from `tense=` (a word, or a function of each
expression's offsets: the offline extractor reads it from spaCy), else from the words
around each expression (`tense.of_text`); with none to tell, the nearest reading wins.

"before April", "by the end of next month", "after May", "since June", "until Friday"
are ranges with one end at that time and the other at the anchor when the anchor
closes them ("remind me before April", said 4 March 2024: 4 to 31 March 2024); an
open one ("I had left before April", said in May) is the day at its edge, marked by
`DateSpan.bound`.

Conventions (documented, since English is ambiguous): "last Tuesday" is the latest
Tuesday strictly before the anchor day, "next Tuesday" the first one strictly after;
"this Tuesday" is the one of this week (the next one in a plan once this week's has
passed, the last one in the past tense once it is still ahead); weeks run Monday to
Sunday; "this weekend" is the coming (or current) one, in the past tense the latest one
begun; "next weekend" the one after this weekend; "N weeks ago" is the week that holds
the day N weeks back; "last summer" is the latest summer that ended before the anchor;
seasons are the northern meteorological ones. A bare weekday said on that weekday is
today, or a week ahead in a plan, a week back in the past tense. Vague words ("recently",
"a while ago") resolve to nothing."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ..timeframe import timeframes
from .tense import FUTURE, PAST, PRESENT, Tense, TenseOf, of_text

_MONTH_NAMES = [m for m in calendar.month_name if m]
_MONTH_NUMBER = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTH_NUMBER |= {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_MONTH_NUMBER["sept"] = 9
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}  # first month
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "couple of": 2,
            "a couple": 2, "a few": 3, "few": 3}
_PARTS = ("morning", "afternoon", "evening", "night")


@dataclass(frozen=True)
class DateSpan:
    """Days [start, end], both inclusive, and how precise the expression was.

    `bound` ("before", "by", "after", "since", "until", "by the end of", …) marks a span
    that one time limits on one side ("before April"); `ref` is that time. When the
    anchor closes the other side the span runs to (or from) the anchor; otherwise it is
    the day at the edge and the other side is open."""

    start: date
    end: date
    precision: str  # "day", "days", "week", "weekend", "month", "season", "year"
    approximate: bool = False  # "a few days ago"
    part: str | None = None  # "evening": "tomorrow evening", "on Friday night"
    bound: str | None = None
    ref: DateSpan | None = None

    @property
    def when(self) -> str:
        return self.start.isoformat()

    @property
    def when_end(self) -> str | None:
        return None if self.start == self.end else self.end.isoformat()

    @property
    def open(self) -> bool:
        """A bound span whose far side is unknown ("I had left before April")."""
        return self.bound is not None and self.start == self.end

    def describe(self) -> str:
        """A phrase that stands in for the relative expression: 'on 7 May 2023'."""
        if self.bound is not None and self.ref is not None:
            return f"{self.bound} {self.ref.bare()}"
        s, e = self.start, self.end
        about = "around " if self.approximate else ""
        if self.part and s == e:
            return f"{about or 'on '}the {self.part} of {_day(s)}"
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

    def bare(self) -> str:
        """`describe()` without its leading preposition: 'May 2023', 'the week of 1 May 2023'."""
        phrase = self.describe()
        for lead in ("on ", "in "):
            if phrase.startswith(lead):
                return phrase[len(lead):]
        if phrase.startswith("between "):
            return _day(self.start)
        return phrase


@dataclass(frozen=True)
class TimeMention:
    start: int  # character offsets in the text
    end: int
    text: str
    span: DateSpan
    relative: bool  # True when the text means nothing without the anchor


@dataclass(frozen=True)
class Recurrence:
    """A time that repeats: "on Tuesday evenings" is `every` = "every Tuesday evening"."""

    start: int
    end: int
    text: str
    every: str

    def describe(self) -> str:
        return self.every


def _day(d: date) -> str:
    return f"{d.day} {calendar.month_name[d.month]} {d.year}"


_NUM = r"(\d{1,2}|a couple of|couple of|a couple|a few|few|an?|one|two|three|four|five|six|seven|eight|nine|ten|" \
       r"eleven|twelve)"
_UNIT = r"(day|weekend|week|month|year)s?"
_WEEKDAY = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_PART = r"(?:\s+(?P<part>morning|afternoon|evening|night)\b(?!s))?"
_MONTHS = r"(?-i:(January|February|March|April|May|June|July|August|September|October|November|December))"
_MONTH_ANY = r"(?-i:(January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|" \
             r"Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec))\b"
_NO_YEAR = r"(?!,?\s*(?:19|20)\d\d\b)"
_SEASON = r"(spring|summer|autumn|fall|winter)"
_RULES: list[tuple[str, re.Pattern[str]]] = [(name, re.compile(pattern, re.IGNORECASE)) for name, pattern in [
    ("day_before_yesterday", rf"\bthe day before yesterday{_PART}"),
    ("day_after_tomorrow", rf"\bthe day after tomorrow{_PART}"),
    ("ago", rf"\b{_NUM} {_UNIT} ago\b"),
    ("in_n", rf"\bin {_NUM} {_UNIT}\b(?! ago)"),
    ("rolling", rf"\b(?:(?:in|over|during|for|within) )?the (?:past|last) (?:{_NUM} )?(day|week|month|year)s?\b"
                r"(?! of)"),
    ("weekday", rf"\b(last|this past|next|this coming|coming|this) {_WEEKDAY}\b{_PART}"),
    ("month_of_year", rf"\b{_MONTHS}(?: of)? (last|next|this) year\b"),
    ("period", r"\b(last|this past|the past|past|next|this coming|the coming|this|earlier this|later this) "
               r"(week|weekend|month|year)\b(?!s)"),
    ("the_weekend", r"\b(over|on|at|for|during) (the weekend)\b(?! of)"),
    ("season", rf"\b(last|this past|next|this coming|this) {_SEASON}\b"),
    ("bare_season", rf"\b(?:in|during|over) the {_SEASON}\b(?! of)|\bin {_SEASON}\b(?! \d)"),
    ("month", rf"\b(last|next|this) {_MONTHS}\b"),
    ("yesterday", rf"\b(?:yesterday{_PART}|last night\b)"),
    ("today", r"\b(today|tonight|this morning|this afternoon|this evening)\b"),
    ("tomorrow", rf"\btomorrow{_PART}"),
    ("other_day", r"\bthe other day\b"),
    ("day_month", rf"\b(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_ANY}{_NO_YEAR}"),
    ("month_day", rf"\b{_MONTH_ANY}\.?\s+(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\b(?![:\d]){_NO_YEAR}"),
    ("ordinal_day", r"\bon the (\d{1,2})(?:st|nd|rd|th)\b(?=\s*(?:[.,!?;:)]|$|(?:and|at|so|when|but|too|as|"
                    r"because|which|this|last|or)\b))"),
    ("bare_month", rf"{_MONTHS}(?!,?\s*\d)"),
    ("bare_weekday", rf"\b(?:(?P<on>on)\s+)?{_WEEKDAY}\b(?!')(?!s\b){_PART}"),
]]
_NOT_A_DAY = re.compile(r"\b(?:black|good|cyber|easter|ash|holy|palm|super|blue|fat|giving|maundy|a|the|every|each|"
                        r"one|some|any|that|which|favou?rite|is|was|are|were|'s)\s+$", re.IGNORECASE)

_AFTER_PREPOSITION = re.compile(r"\b(?:in|of|during|since|until|till|before|after|by|from|through|early|late|mid|"
                                r"end of|start of|beginning of|middle of)\s+$", re.IGNORECASE)

_EVERY_UNIT = r"(day|morning|afternoon|evening|night|week|weekend|weekday|month|year|spring|summer|autumn|fall|" \
              r"winter|christmas|easter|thanksgiving|halloween|birthday)"
_RECURRING: list[tuple[str, re.Pattern[str]]] = [(name, re.compile(pattern, re.IGNORECASE)) for name, pattern in [
    ("every_n", rf"\b(?:every|each)\s+(other|few|couple of|\d+|two|three|four|five|six)\s+{_UNIT}"),
    ("every_weekday", rf"\b(?:every|each)\s+(?:single\s+)?{_WEEKDAY}\b(?:\s+(morning|afternoon|evening|night))?"),
    ("every_month", rf"\b(?:every|each)\s+{_MONTHS}\b"),
    ("every", rf"\b(?:every|each)\s+(?:single\s+)?{_EVERY_UNIT}\b"),
    ("times_a", rf"\b(once|twice|thrice|(?:\w+|a few|a couple of|several)\s+times)\s+(?:a|an|per|each|every)\s+"
                rf"{_UNIT}"),
    ("weekday_parts", rf"\b(?:on\s+)?{_WEEKDAY}\s+(mornings|afternoons|evenings|nights)\b"),
    ("weekdays", rf"\b(?:on\s+)?(?:the\s+)?(mondays|tuesdays|wednesdays|thursdays|fridays|saturdays|sundays)\b"
                 rf"(?:\s+and\s+(mondays|tuesdays|wednesdays|thursdays|fridays|saturdays|sundays)\b)?"
                 r"(?:\s+(mornings|afternoons|evenings|nights)\b)?"),
    ("weekends", r"\b(?:on\s+|at\s+|over\s+|during\s+)?(?:the\s+|most\s+)?(weekends|weekdays|weeknights)\b(?! ago)"),
    ("adverb", r"\b(daily|nightly|weekly|fortnightly|monthly|yearly|annually)\b"),
    ("in_the_parts", r"\bin\s+the\s+(mornings|afternoons|evenings)\b"),
]]
_COUNTED = re.compile(rf"\b{_NUM}\s+$", re.IGNORECASE)
_SHIFTED = re.compile(r"\s+(?:later|ago|before|after|earlier|back|from now)\b", re.IGNORECASE)
_ADVERB = {"daily": "every day", "nightly": "every night", "weekly": "every week", "fortnightly": "every two weeks",
           "monthly": "every month", "yearly": "every year", "annually": "every year"}
_TARGET = re.compile(r"\bfor\s+(?:the\s+)?$", re.IGNORECASE)
_BOUND = re.compile(r"\b(before|after|by|until|till|til|since|through)\s+(?:(the\s+(?:end|start|beginning|middle)"
                    r"\s+of)\s+)?$", re.IGNORECASE)


def find(text: str, anchor: datetime | date, *, future: bool = False, tense: Tense | TenseOf | None = None,
         recurring: list[Recurrence] | None = None) -> list[TimeMention]:
    """Every dated time expression of `text`, in order of appearance. `future=True` says
    the whole text looks forward; `tense` gives the tense of the whole text or, as a
    function of an expression's offsets, of each one; otherwise each expression's tense
    is read from the words around it. Recurring expressions are not dates (see
    `recurrences`; pass `recurring` when they are found already)."""
    day = anchor.date() if isinstance(anchor, datetime) else anchor

    def tense_at(start: int, end: int) -> Tense | None:
        if future:
            return FUTURE
        if isinstance(tense, str):
            return tense
        given = tense(start, end) if tense is not None else None
        given = given or of_text(text, start, end)
        if given == PAST and _TARGET.search(text, 0, start):
            return FUTURE  # "I booked the flights for October 12": what was booked lies ahead
        return given

    found: list[TimeMention] = []
    taken = [False] * len(text)
    for r in recurrences(text) if recurring is None else recurring:
        taken[r.start:r.end] = [True] * (r.end - r.start)
    for name, pattern in _RULES:
        for match in pattern.finditer(text):
            if any(taken[match.start():match.end()]):
                continue
            span = _resolve(name, match, text, day, tense_at)
            if span is None:
                continue
            start, end = match.span()
            if name == "the_weekend" and match.group(1).lower() not in ("on", "at"):
                start = match.start(2)  # "wait for the weekend of 13 May 2023"; "on the weekend of 6 May 2023"
            found.append(TimeMention(start, end, text[start:end], span, relative=True))
            taken[match.start():match.end()] = [True] * (match.end() - match.start())
    rest = "".join(" " if t else c for c, t in zip(text, taken))
    for frame, (start, end) in _explicit(rest):
        span = _from_frame(frame, day, tense_at(start, end))
        if span is not None:
            found.append(TimeMention(start, end, text[start:end], span, relative=frame.start is None))
    found = [_bounded(text, m, day) for m in found]
    return sorted(found, key=lambda m: m.start)


def resolve(expression: str, anchor: datetime | date, *, future: bool = False,
            tense: Tense | TenseOf | None = None) -> DateSpan | None:
    """The span of one expression ("last Tuesday"), or None when it names no date."""
    mentions = find(expression, anchor, future=future, tense=tense)
    return mentions[0].span if mentions else None


def recurrences(text: str) -> list[Recurrence]:
    """Every recurring time expression of `text` ("every Tuesday", "on Tuesday
    evenings", "twice a week", "on weekends", "each summer"), in order of appearance."""
    found: list[Recurrence] = []
    taken = [False] * len(text)
    for name, pattern in _RECURRING:
        for m in pattern.finditer(text):
            if any(taken[m.start():m.end()]):
                continue
            every = _every(name, [g.lower() if g else g for g in m.groups()])
            if every is None or (name == "weekends" and _COUNTED.search(text[:m.start()]) or
                                 name == "weekends" and _SHIFTED.match(text[m.end():])):
                continue  # "two weekends later": a date, not a habit
            found.append(Recurrence(m.start(), m.end(), m.group(0), every))
            taken[m.start():m.end()] = [True] * (m.end() - m.start())
    return sorted(found, key=lambda r: r.start)


def absolute(text: str, mentions: list[TimeMention]) -> str:
    """`text` with each relative mention replaced by the dates it stands for ("I went
    there yesterday" -> "I went there on 7 May 2023"), the prepositions around it kept
    grammatical."""
    out, last = [], 0
    for mention in sorted(mentions, key=lambda m: m.start):
        if not mention.relative or mention.start < last:
            continue
        phrase = mention.span.describe()
        before = text[last:mention.start]
        first = phrase.split(" ", 1)[0]
        tail = before.rstrip().lower()
        if tail.endswith(" " + first) or tail == first:
            before = before.rstrip()[: -len(first)].rstrip() + " "
        elif first in ("in", "on") and (re.search(r"\b(?:about|around|roughly|approximately|almost|nearly|over|under|"
                                                   r"for|by|from|until|till|since|of|during|after|before)\s*$",
                                                   before, re.IGNORECASE)
                                         or text[mention.end:mention.end + 2] == "'s"):
            phrase = phrase.split(" ", 1)[1]
        if not before.strip() and mention.start == 0 or re.search(r"[.!?]\s*$", before):
            phrase = phrase[:1].upper() + phrase[1:]
        out.append(before + phrase)
        last = mention.end
    out.append(text[last:])
    return "".join(out)


def _resolve(name: str, m: re.Match[str], text: str, day: date, tense_at) -> DateSpan | None:
    g = [x.lower() if x else x for x in m.groups()]
    part = m.groupdict().get("part")
    part = part.lower() if part else None
    if name == "yesterday":
        return _one(day - timedelta(days=1), part)
    if name == "today":
        return _one(day)
    if name == "tomorrow":
        return _one(day + timedelta(days=1), part)
    if name == "day_before_yesterday":
        return _one(day - timedelta(days=2), part)
    if name == "day_after_tomorrow":
        return _one(day + timedelta(days=2), part)
    if name == "other_day":
        return DateSpan(day - timedelta(days=7), day - timedelta(days=1), "days", approximate=True)
    if name == "ago":
        return _shift(day, -_count(g[0]), g[1], g[0] in ("a few", "few"))
    if name == "in_n":
        if tense_at(m.start(), m.end()) == PAST:  # "we haven't talked in a few days": a length, not a date
            return None
        return _shift(day, _count(g[0]), g[1], g[0] in ("a few", "few"))
    if name == "rolling":  # "in the past week", "the last few days": the days up to yesterday
        count = _count(g[0]) if g[0] else 1
        first = _shift_back(day, count, g[1])
        return DateSpan(first, day - timedelta(days=1), "days", approximate=g[0] in ("a few", "few"))
    if name == "bare_month":
        if g[0] in ("may", "april", "june") and not _AFTER_PREPOSITION.search(text[:m.start()]):
            return None  # "May I…", "April said…": a month only after "in", "of", "by"…
        month = _MONTH_NUMBER[g[0]]
        return _month_span(_pick_month(day, month, tense_at(m.start(), m.end())), month)
    if name == "month_of_year":
        return _month_span(day.year + {"last": -1, "next": 1}.get(g[1], 0), _MONTH_NUMBER[g[0]])
    if name == "weekday":
        direction, weekday = g[0], _WEEKDAYS[g[1]]
        if direction in ("last", "this past"):
            return _one(_previous_weekday(day, weekday), part)
        if direction in ("next", "this coming", "coming"):
            return _one(_next_weekday(day, weekday), part)
        this_week = day - timedelta(days=day.weekday()) + timedelta(days=weekday)  # "this Tuesday"
        tense = tense_at(m.start(), m.end())
        if this_week < day and tense in (FUTURE, PRESENT):
            this_week += timedelta(weeks=1)
        elif this_week > day and tense == PAST:
            this_week -= timedelta(weeks=1)
        return _one(this_week, part)
    if name == "bare_weekday":
        if not g[0] and not m.group(2)[:1].isupper():
            return None  # "friday" alone, lower case: too weak a signal
        if not g[0] and _NOT_A_DAY.search(text[:m.start()]):
            return None  # "Good Friday", "a Friday", "my favourite day is Friday"
        return _one(_pick_weekday(day, _WEEKDAYS[g[1]], tense_at(m.start(), m.end())), part)
    if name == "period":
        direction = {"this coming": "next", "the coming": "next", "the past": "last"}.get(g[0], g[0])
        if g[1] == "weekend" and g[0] in ("this coming", "the coming"):
            return _weekend(day, 0)
        if g[1] == "weekend" and direction == "this" and tense_at(m.start(), m.end()) == PAST:
            return _weekend(day, 0 if day.weekday() >= 5 else -1)  # "we went hiking this weekend", said Monday
        return _period(direction, g[1], day)
    if name == "the_weekend":
        tense = tense_at(m.start(), m.end())
        if tense == PAST or (tense is None and g[0] == "over"):
            return _weekend(day, 0 if day.weekday() >= 5 else -1)
        return _weekend(day, 0)
    if name == "season":
        return _season(g[0], g[1], day, tense_at(m.start(), m.end()))
    if name == "bare_season":
        tense = tense_at(m.start(), m.end())
        if tense not in (PAST, FUTURE):
            return None  # "I love skiing in the winter": any winter
        return _season("this", g[0] or g[1], day, tense)
    if name == "month":
        month = _MONTH_NUMBER[g[1]]
        if g[0] == "last":
            year = day.year if month < day.month else day.year - 1
        elif g[0] == "next":
            year = day.year if month > day.month else day.year + 1
        else:
            year = day.year
        return _month_span(year, month)
    if name in ("day_month", "month_day"):
        number, month_name = (g[0], g[1]) if name == "day_month" else (g[1], g[0])
        month = _MONTH_NUMBER.get(month_name.rstrip("."))
        if month is None or not 1 <= int(number) <= 31:
            return None
        picked = _pick_day_of_year(day, month, int(number), tense_at(m.start(), m.end()))
        return _one(picked) if picked else None
    if name == "ordinal_day":  # "it finally dropped on the 11th", said 13 September: 11 September
        picked = _pick_day_of_month(day, int(g[0]), tense_at(m.start(), m.end()))
        return _one(picked) if picked else None
    return None


def _pick_weekday(day: date, weekday: int, tense: Tense | None) -> date:
    ahead = (weekday - day.weekday()) % 7
    if tense == PAST:
        return day - timedelta(days=(7 - ahead) if ahead else 7)
    if tense == FUTURE:
        return day + timedelta(days=ahead or 7)
    if tense == PRESENT or ahead == 0:
        return day + timedelta(days=ahead)
    return day + timedelta(days=ahead) if ahead <= 3 else day - timedelta(days=7 - ahead)  # the nearer one


def _pick_month(day: date, month: int, tense: Tense | None) -> int:
    """The year of the month a bare month name means."""
    if tense == PAST:
        return day.year if month <= day.month else day.year - 1
    if tense in (FUTURE, PRESENT):
        return day.year if month >= day.month else day.year + 1
    ahead, back = (month - day.month) % 12, (day.month - month) % 12
    if ahead == 0:
        return day.year
    return (day.year if month > day.month else day.year + 1) if ahead < back else \
        (day.year if month < day.month else day.year - 1)


def _pick_day_of_year(day: date, month: int, number: int, tense: Tense | None) -> date | None:
    return _pick_by_tense(day, [(year, month) for year in (day.year - 1, day.year, day.year + 1)], number, tense)


def _pick_day_of_month(day: date, number: int, tense: Tense | None) -> date | None:
    """The day `number` of this month, the last or the next, by tense (the nearest
    when none tells): "on the 11th"."""
    months = [_add_months(day.year, day.month, offset) for offset in (-2, -1, 0, 1, 2)]  # a 31st may be 2 away
    return _pick_by_tense(day, months, number, tense)


def _pick_by_tense(day: date, months: list[tuple[int, int]], number: int, tense: Tense | None) -> date | None:
    """Of day `number` of each (year, month) that has it (no 29 February, no 31 April),
    the latest on or before `day` in the past tense, the first on or after it in a plan
    or the present, else the nearest."""
    options = []
    for year, month in months:
        try:
            options.append(date(year, month, number))
        except ValueError:
            continue
    if not options:
        return None
    if tense == PAST:
        before = [d for d in options if d <= day]
        return before[-1] if before else None
    if tense in (FUTURE, PRESENT):
        after = [d for d in options if d >= day]
        return after[0] if after else None
    return min(options, key=lambda d: (abs((d - day).days), d > day))


def _shift_back(day: date, count: int, unit: str) -> date:
    if unit in ("day", "week", "weekend"):
        return day - timedelta(days=count * (1 if unit == "day" else 7))
    months = count * (12 if unit == "year" else 1)
    year, month = _add_months(day.year, day.month, -months)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word]


def _one(d: date, part: str | None = None) -> DateSpan:
    return DateSpan(d, d, "day", part=part)


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
    if unit == "weekend":  # "two weekends ago": the one before last weekend
        this = _weekend(day, 0 if day.weekday() == 6 else -1) if n < 0 else _weekend(day, 0)
        saturday = this.start + timedelta(weeks=n + 1 if n < 0 else n)
        return DateSpan(saturday, saturday + timedelta(days=1), "weekend", approximate=fuzzy)
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


def _season(direction: str, name: str, day: date, tense: Tense | None = None) -> DateSpan:
    first = _SEASONS[name]

    def span(year: int) -> DateSpan:  # the season starting in `year`
        start = date(year, first, 1)
        end_year, end_month = _add_months(year, first, 2)
        return DateSpan(start, _month_span(end_year, end_month).end, "season")

    candidates = [span(y) for y in range(day.year - 2, day.year + 2)]
    if direction in ("last", "this past"):
        return [s for s in candidates if s.end < day][-1]
    if direction in ("next", "this coming"):
        return [s for s in candidates if s.start > day][0]
    if tense == PAST:  # "this summer" / "in the summer", looking back: the latest one begun
        return [s for s in candidates if s.start <= day][-1]
    current = [s for s in candidates if s.start <= day <= s.end]  # "this summer": the one we are in
    if current:
        return current[0]
    return [s for s in candidates if s.start > day][0]


def _previous_weekday(day: date, weekday: int) -> date:
    return day - timedelta(days=(day.weekday() - weekday - 1) % 7 + 1)


def _next_weekday(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday() - 1) % 7 + 1)


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def _month_span(year: int, month: int) -> DateSpan:
    return DateSpan(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]), "month")


def _every(name: str, g: list[str | None]) -> str | None:
    if name == "every_n":
        count, unit = g[0], g[1]
        return f"every {count} {unit}s" if count != "other" else f"every other {unit}"
    if name == "every_weekday":
        return f"every {g[0].title()}" + (f" {g[1]}" if g[1] else "")
    if name == "every_month":
        return f"every {g[0].title()}"
    if name == "every":
        unit = g[0]
        return f"every {unit.title() if unit in ('christmas', 'easter', 'thanksgiving', 'halloween') else unit}"
    if name == "times_a":
        return f"{g[0]} a {g[1]}"
    if name == "weekday_parts":
        return f"every {g[0].title()} {g[1][:-1]}"
    if name == "weekdays":
        days = " and ".join(d[:-1].title() for d in g[:2] if d)
        return f"every {days}" + (f" {g[2][:-1]}" if g[2] else "")
    if name == "weekends":
        return {"weekends": "every weekend", "weekdays": "every weekday", "weeknights": "every weeknight"}[g[0]]
    if name == "adverb":
        return _ADVERB[g[0]]
    if name == "in_the_parts":
        return f"every {g[0][:-1]}"
    return None


def _bounded(text: str, mention: TimeMention, day: date) -> TimeMention:
    """"before April", "by the end of next month", "since June": the mention widened to
    its bound word, its span to the range the bound leaves."""
    bound = _BOUND.search(text[:mention.start])
    if bound is None or text[mention.end:mention.end + 2] == "'s":
        return mention
    word = bound.group(1).lower()
    word = {"till": "until", "til": "until"}.get(word, word)
    edge = (bound.group(2) or "").lower()
    ref = mention.span
    if word in ("before", "by", "until", "through"):
        if edge.startswith("the end"):
            limit = ref.end
        elif edge:
            limit = ref.start
        else:
            limit = ref.start - timedelta(days=1) if word == "before" else ref.end
        start, end = (day, limit) if limit >= day else (limit, limit)
    else:  # after, since
        if word == "after":
            first = ref.start if edge and not edge.startswith("the end") else ref.end + timedelta(days=1)
        else:
            first = ref.end if edge.startswith("the end") else ref.start
        start, end = (first, day) if first <= day else (first, first)
    label = f"{word} {edge}" if edge else word
    widened = DateSpan(start, end, ref.precision, ref.approximate, None, label, ref)
    return TimeMention(bound.start(), mention.end, text[bound.start():mention.end], widened, mention.relative)


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
            end = match.end()
            if text[end - 1] == "." and text[:end - 1].rsplit(None, 1)[-1] in _MONTH_NAMES:
                end -= 1  # "in May.": the sentence's full stop, not an abbreviation's
            yield frames[0], (match.start(), end)


def _from_frame(frame, day: date, tense: Tense | None) -> DateSpan | None:
    if frame.start is not None and frame.end is not None:
        start = frame.start.date()
        end = (frame.end - timedelta(days=1)).date()
        length = (end - start).days
        precision = "day" if length == 0 else "month" if length < 32 else "year"
        return DateSpan(start, end, precision)
    month = frame.month
    if month is None:
        return None
    return _month_span(_pick_month(day, month, tense), month)
