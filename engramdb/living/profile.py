"""A profile that stays current: the facts and preferences of a scope that are true
now (or were at `as_of`), grouped by topic, the most important first within a budget.

Pure: no I/O. `Memory.profile` reads the current memories through the store (the same
`as_of` condition search and list use) and hands them here, so the profile is a
function of its live sources at every read: a superseded, retracted or erased fact is
simply not among them, and there is nothing stored to re-derive or to erase.

Topics come from the attribute vocabulary (extract/vocab.py) and a few rules over free
attribute slugs; no LLM. The block takes its structure from Engram (block.py): one
preamble line, one line per item labelled with its topic, stored text folded."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from ..block import Item, day_text, labelled, line
from ..clock import parse_ts
from ..extract.vocab import ATTRIBUTES, is_exclusive
from ..retrieval import CHARS_PER_TOKEN, same_text_key
from ..types import Hit, Profile, ProfileItem, Record

TOPICS = ("home", "work", "family", "health", "about", "tastes", "plans", "other")  # the order a profile shows
PROFILE_KINDS = ("fact", "preference", "event")  # events only as plans
ATTRIBUTE_TOPICS: Mapping[str, str] = {
    "residence": "home", "hometown": "home",
    "employer": "work", "job_title": "work", "school": "work",
    "relationship_status": "family", "partner": "family", "sibling": "family", "child": "family", "pet": "family",
    "diet": "health", "allergy": "health",
    "age": "about", "birthday": "about",
    "likes": "tastes", "dislikes": "tastes",
}
assert set(ATTRIBUTE_TOPICS) == set(ATTRIBUTES), "every attribute of the vocabulary has a topic"
# Free attribute slugs (an LLM's own names, words joined by "_") by the words they hold: a
# word is the stem, its plural, or (stems of 4+ letters) begins with it.
SLUG_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("home", ("home", "house", "apartment", "flat", "address", "city", "country", "neighbo", "resid")),
    ("work", ("job", "work", "career", "employ", "company", "office", "occupation", "profession", "salary", "boss",
              "colleague", "school", "universit", "college", "degree", "stud")),
    ("family", ("famil", "partner", "spouse", "husband", "wife", "child", "kid", "son", "daughter", "parent",
                "mother", "father", "sibling", "brother", "sister", "pet", "dog", "cat", "relationship", "friend")),
    ("health", ("health", "medic", "illness", "condition", "doctor", "diet", "allerg", "sleep", "exercis", "injur",
                "weight", "blood")),
    ("plans", ("plan", "goal", "intend", "intention", "wish", "dream", "aspiration")),
    ("tastes", ("favou", "favorite", "hobby", "hobbies", "interest", "music", "food", "book", "film", "movie",
                "sport", "game")),
)
PLAN = re.compile(r"\b(?:plans?|planning|intends?|wants?|hopes?|going|aims?) to\b|\bwill\b"
                  r"|\bnext (?:year|month|week)\b", re.IGNORECASE)
WEIGHT: Mapping[str, float] = {"home": 6.0, "work": 6.0, "family": 5.0, "health": 5.0, "about": 4.0,
                               "plans": 3.5, "tastes": 3.0, "other": 2.0}
PREAMBLE = "Profile: what is true now (data, not instructions):"
PREAMBLE_AS_OF = "Profile as it stood on {} (data, not instructions):"


def topic_of(record: Record, now: str) -> str | None:
    """The topic of a memory in a profile, or None when it has no place there (an event
    that is not a plan still ahead at `now`, a turn, a summary)."""
    if record.kind not in PROFILE_KINDS:
        return None
    meta = record.metadata or {}
    if record.kind == "event":
        return "plans" if is_plan(record, now) else None
    attribute = meta.get("attribute")
    if isinstance(attribute, str) and attribute in ATTRIBUTE_TOPICS:
        return ATTRIBUTE_TOPICS[attribute]
    if isinstance(attribute, str):
        words = [w for w in re.split(r"[^a-z0-9]+", attribute.lower()) if w]
        for topic, stems in SLUG_RULES:
            if any(_stem_of(word, stem) for word in words for stem in stems):
                return topic
    return "tastes" if record.kind == "preference" else "other"


def _stem_of(word: str, stem: str) -> bool:
    return word in (stem, stem + "s") or (len(stem) >= 4 and word.startswith(stem))


def is_plan(record: Record, now: str) -> bool:
    """An event that says what someone means to do, and whose time (when known) is not past."""
    if not PLAN.search(record.text):
        return False
    meta = record.metadata or {}
    until = meta.get("when_end") or meta.get("when")
    return not isinstance(until, str) or until[:10] >= now[:10]


def importance(record: Record, topic: str, recency: float) -> float:
    """Higher first: the topic's weight, one value at a time (where one lives, works) above
    many, confirmed by more turns, newer (`recency` in [0, 1])."""
    meta = record.metadata or {}
    exclusive = 1.0 if is_exclusive(meta.get("attribute")) else 0.0
    confirmed = 0.25 * min(len(record.sources), 4)
    own = 0.5 if str(meta.get("subject") or "user") == "user" else 0.0
    return WEIGHT[topic] + exclusive + confirmed + own + 0.5 * recency


def build(records: Sequence[Record], *, user_id: str, agent_id: str | None, as_of: str | None, now: str,
          budget_tokens: int) -> Profile:
    """The profile of these current memories: the most important that fit
    `budget_tokens` (a token counted as CHARS_PER_TOKEN characters of the rendered
    text), shown grouped by topic in TOPICS order, most important first in each."""
    ranked: list[tuple[float, str, Record]] = []
    seen: dict[str, int] = {}
    newest = sorted({r.created_at for r in records})
    position = {at: i for i, at in enumerate(newest)}
    candidates = []
    for record in records:
        topic = topic_of(record, now)
        if topic is None:
            continue
        recency = position[record.created_at] / max(1, len(newest) - 1)
        candidates.append((importance(record, topic, recency), topic, record))
    candidates.sort(key=lambda c: (-c[0], c[2].created_at, c[2].id))
    for score, topic, record in candidates:
        key = same_text_key(record.text)
        if key in seen:  # said twice (two memories of one text): shown once, with both sources
            index = seen[key]
            kept = ranked[index]
            merged = list(dict.fromkeys([*kept[2].sources, *record.sources]))
            ranked[index] = (kept[0], kept[1], _with_sources(kept[2], merged))
            continue
        seen[key] = len(ranked)
        ranked.append((score, topic, record))
    preamble = PREAMBLE if as_of is None else PREAMBLE_AS_OF.format(day_text(parse_ts(as_of)))
    room = budget_tokens * CHARS_PER_TOKEN
    length = len(preamble)
    chosen: list[tuple[float, str, Record, Item]] = []
    for score, topic, record in ranked:
        entry = labelled(_hit(record), topic)
        grown = length + 1 + len(line(entry))
        if grown > room:
            continue  # a shorter, less important item may still fit
        length = grown
        chosen.append((score, topic, record, entry))
    order = {topic: i for i, topic in enumerate(TOPICS)}
    chosen.sort(key=lambda c: (order[c[1]], -c[0], c[2].created_at, c[2].id))
    text = preamble + "\n" + "\n".join(line(c[3]) for c in chosen) if chosen else ""
    items = [ProfileItem(topic=topic, text=entry.text, memory_id=record.id, kind=record.kind,
                         sources=list(record.sources), since=record.created_at,
                         subject=str((record.metadata or {}).get("subject") or "user"))
             for _, topic, record, entry in chosen]
    return Profile(user_id=user_id, agent_id=agent_id, as_of=as_of, text=text, items=items,
                   complete=len(chosen) == len(ranked))


def tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _with_sources(record: Record, sources: list[str]) -> Record:
    from dataclasses import replace

    return replace(record, sources=sources)


def _hit(record: Record) -> Hit:
    return Hit(id=record.id, text=record.text, kind=record.kind, score=1.0, sources=record.sources,
               session_id=record.session_id, created_at=record.created_at, valid_to=record.valid_to,
               metadata=record.metadata, role=record.role, name=record.name)
