"""Query understanding without an LLM: pure functions of the query text and the candidates.

- `parts`: a question that asks two things ("Who did Evan meet in Canada, and who did he
  come back with?") is split into its parts; search fuses each part's ranking with the
  whole question's (Memory.search), so that the second part's evidence is not outvoted
  by the first's.
- `anchor` and `anchored_ranking`: "What did Melanie do after the road trip?" names an
  event, not a date. The candidate that best says the event ("road trip") anchors the
  question on the day it was said; the candidates said on or after that day (before it,
  for "before"), within `HORIZON`, are one more ranked list for fusion."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from .clock import parse_ts
from .graph import words
from .timeframe import MAX_SHARE, timeframes
from .types import Record, ScoredId

HORIZON = timedelta(days=90)  # how far from its anchor a "before / after" question looks
MIN_PART_WORDS = 3
_WH = r"(?:what|when|where|who|whom|which|why|how)"
_SPLIT = re.compile(rf"\s*(?:\?\s+|[,;]\s*(?:and|or)?\s+(?={_WH}\b)|\s+(?:and|or)\s+(?={_WH}\b))", re.IGNORECASE)
_ASKS = re.compile(rf"\b{_WH}\b", re.IGNORECASE)
_ANCHOR = re.compile(r"\b(before|after)\s+(.+?)\s*[?.!]*\s*$", re.IGNORECASE)
_NOT_AN_EVENT = re.compile(rf"^(?:{_WH}\b|\d|that\b|this\b|it\b|then\b|them\b|him\b|her\b|you\b|me\b|us\b)",
                           re.IGNORECASE)
_FILLER = frozenset("""the a an his her their my our your its this that of to in on at for with from by and or
did does do was were is are be been being has have had""".split())


def parts(query: str) -> list[str]:
    """The questions `query` asks, when it asks more than one; else [] (one question)."""
    found = [p.strip(" ,;?") for p in _SPLIT.split(query.strip())]
    if len(found) < 2 or not all(len(p.split()) >= MIN_PART_WORDS and _ASKS.search(p) for p in found):
        return []  # "According to Gina, what makes Jon a good mentor?" asks one thing
    return found


@dataclass(frozen=True)
class Anchor:
    direction: str  # "before" or "after"
    words: tuple[str, ...]  # the event's words ("road", "trip")


def anchor(query: str) -> Anchor | None:
    """The event a "before / after" question is anchored on; None when it names none, or
    names a date (timeframe.py reads those)."""
    match = _ANCHOR.search(query)
    if match is None:
        return None
    if timeframes(match.group(2)) or re.match(r"\d|(?:last|next|this)\b", match.group(2)):
        return None
    phrase = re.split(r",|\band\b|\bto\b", match.group(2), maxsplit=1)[0].strip()
    if not phrase or _NOT_AN_EVENT.match(phrase):
        return None
    event = tuple(w for w in words(phrase) if w not in _FILLER and len(w) > 2)
    return Anchor(match.group(1).lower(), event) if event else None


def anchored_ranking(query: str, fused: Sequence[ScoredId], records: Mapping[int, Record],
                     max_share: float = MAX_SHARE) -> list[ScoredId]:
    """The candidates said on the anchor's side of its day, in their fused order; empty
    when the query has no anchor, no candidate says the event, or the side holds most of
    the candidates (it would not discriminate)."""
    found = anchor(query)
    if found is None or not fused:
        return []
    best, best_count = None, 0
    for item in fused:  # in fused order: of those that say most of the event, the best ranked
        record = records.get(item.rowid)
        if record is None:
            continue
        said = set(words(record.text))
        count = sum(1 for w in found.words if w in said or w.rstrip("s") in said)
        if count > best_count:
            best, best_count = record, count
    if best is None or best_count * 2 < len(found.words):
        return []
    day = parse_ts(best.created_at).replace(hour=0, minute=0, second=0, microsecond=0)
    if found.direction == "after":
        start, end = day, day + timedelta(days=1) + HORIZON
    else:
        start, end = day - HORIZON, day + timedelta(days=1)
    inside = [item for item in fused if item.rowid in records
              and start <= parse_ts(records[item.rowid].created_at) < end]
    return inside if len(inside) <= max_share * len(fused) else []
