"""Dates in LoCoMo turns: the share of date expressions the offline extractor resolves
to the days a reader would say they mean.

Two samples, each drawn per conversation (seeded) from the turns whose own words hold a
date expression: half from those with a tense-dependent or recurring one ("on Friday",
"in May", "this weekend", "in a few days", "every day", "before April"…), half from the
others ("yesterday", "last week", "next month"…). "tuned": 3 + 3 turns per conversation,
60 turns, labelled before the resolver was finished and used while finishing it;
"held-out": 2 + 2 more per conversation (none of the first), 40 turns, labelled and
scored once, never tuned on. Each expression was labelled by hand with the days it means
given the session's date, or as recurring, or as naming no date ("we haven't talked in a
few days"); vague words ("recently", "the other day", "not too long ago") were left
unlabelled. The labels (`locomo_dates.json`) hold conversation and turn ids, the
expression and the answer: none of LoCoMo's text.

    python -m engramdb.bench.dates [--locomo PATH] [--json]"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

from . import locomo

LABELS = "locomo_dates.json"
SEED = "engram-dates"
PER_STRATUM = 3
_W = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_M = r"(?-i:January|February|March|April|May|June|July|August|September|October|November|December)"
_U = r"(?:day|week|weekend|month|year|morning|afternoon|evening|night|spring|summer|autumn|fall|winter)"
_N = r"(?:a|an|one|two|three|four|five|six|\d+|a few|a couple of)"
TEMPORAL = re.compile(
    rf"\b(?:yesterday|today|tomorrow|tonight|{_W}s?|{_M}|(?:last|next|this|past|coming) {_U}|weekends?|ago|"
    rf"(?:every|each) (?:other )?(?:{_U}|{_W})|in {_N} (?:days?|weeks?|months?|years?)|the other day|(?:19|20)\d\d|"
    rf"(?:once|twice) a {_U}|daily|weekly|monthly)\b", re.IGNORECASE)
TENSE_DEPENDENT = re.compile(
    rf"(?<!last )(?<!next )(?<!this past )\b(?:{_W}s?|(?-i:(?:January|February|March|April|June|July|August|September|"
    rf"October|November|December)|(?<![.!?] )(?<!^)May)(?! \d)(?!,? (?:19|20)\d\d)|this (?:weekend|{_W}|spring|"
    rf"summer|autumn|fall|winter)|(?:on|at|over|for) the weekend|weekends|(?:every|each) (?:other )?(?:{_U}|{_W})|"
    rf"(?:once|twice|\w+ times) a {_U}|daily|weekly|monthly|nightly|in {_N} (?:days?|weeks?|months?|years?)|"
    rf"(?:before|after|by|until|till|since) (?:the )?(?:end of )?(?:next|this|last|{_W}|{_M}|tomorrow|tonight|"
    rf"the weekend))\b", re.IGNORECASE)


@dataclass(frozen=True)
class Reading:
    """What the extractor made of one expression: days, or a recurrence."""

    start: int
    end: int
    first: date | None = None
    last: date | None = None
    every: str | None = None


def own_text(turn: dict[str, Any]) -> str:
    """The speaker's own words: a shared photo's caption is not theirs."""
    return turn["content"].split(" [shares a photo:", 1)[0]


def sample(conversations: list[locomo.Conversation], *, per_stratum: int = PER_STRATUM, seed: str = SEED,
           exclude: frozenset[tuple[str, str]] = frozenset()) -> list[tuple[str, str, str]]:
    """(conversation, dia_id, stratum) of the sampled turns, in conversation order;
    turns in `exclude` ((conversation, dia_id)) are not drawn."""
    out = []
    for conv in conversations:
        turns = [m for _, messages in conv.sessions for m in messages
                 if TEMPORAL.search(own_text(m)) and (conv.sample_id, m["id"]) not in exclude]
        dependent = [m for m in turns if TENSE_DEPENDENT.search(own_text(m))]
        plain = [m for m in turns if not TENSE_DEPENDENT.search(own_text(m))]
        rng = random.Random(f"{seed}-{conv.sample_id}")
        few = min(per_stratum, len(dependent))  # a conversation short of them gives more of the others
        picked = [(m, "tense") for m in rng.sample(dependent, few)]
        picked += [(m, "plain") for m in rng.sample(plain, 2 * per_stratum - few)]
        out.extend((conv.sample_id, m["id"], stratum) for m, stratum in picked)
    return out


def read(text: str, anchor: date) -> list[Reading]:
    """The offline extractor's reading of a turn's dates, sentence by sentence."""
    from ..extract import events, nlp

    out = []
    for sentence in nlp.load()(text.replace("\u2019", "'").replace("\u2018", "'")).sents:
        found = events.times(sentence, anchor)
        base = sentence.start_char
        out += [Reading(base + m.start, base + m.end, m.span.start, m.span.end) for m in found.mentions]
        out += [Reading(base + r.start, base + r.end, every=r.every) for r in found.recurring]
    return out


def load_labels() -> dict[str, Any]:
    return json.loads(resources.files("engramdb.bench").joinpath(LABELS).read_text(encoding="utf-8"))


def ids(labels: dict[str, Any], name: str | None) -> frozenset[tuple[str, str]]:
    """(conversation, dia_id) of the turns of the labelled sample `name` (none for None)."""
    if name is None:
        return frozenset()
    sample_ = next(s for s in labels["samples"] if s["name"] == name)
    return frozenset((t["conversation"], t["dia_id"]) for t in sample_["turns"])


def score(conversations: list[locomo.Conversation], labels: dict[str, Any], reader=read) -> dict[str, Any]:
    """Right and total per label kind and stratum, and each miss."""
    turns = {(c.sample_id, m["id"]): m for c in conversations for _, messages in c.sessions for m in messages}
    tally: dict[str, list[int]] = {}
    misses = []
    for entry in labels["turns"]:
        turn = turns[(entry["conversation"], entry["dia_id"])]
        text = own_text(turn)
        anchor = date.fromisoformat(turn["timestamp"][:10])
        readings = reader(text, anchor)
        for label in entry["labels"]:
            at = _place(text, label["expression"], label.get("occurrence", 1))
            near = [r for r in readings if r.start < at[1] and at[0] < r.end]
            got = _verdict(near)
            want = label["expected"]
            right = got == want
            kind = _kind(want, anchor)
            for key in ("all", f"kind:{kind}", f"stratum:{entry['stratum']}"):
                tally.setdefault(key, [0, 0])
                tally[key][0] += right
                tally[key][1] += 1
            if not right:
                misses.append({"conversation": entry["conversation"], "dia_id": entry["dia_id"],
                               "expression": label["expression"], "expected": want, "got": got})
    return {"turns": len(labels["turns"]),
            "tally": {k: {"right": r, "total": t, "share": round(r / t, 3)} for k, (r, t) in sorted(tally.items())},
            "misses": misses}


def _place(text: str, expression: str, occurrence: int) -> tuple[int, int]:
    at = -1
    for _ in range(occurrence):
        at = text.find(expression, at + 1)
        if at < 0:
            raise ValueError(f"{expression!r} is not in the turn (occurrence {occurrence})")
    return at, at + len(expression)


def _verdict(near: list[Reading]) -> Any:
    dated = [r for r in near if r.first is not None]
    if dated:
        return [[r.first.isoformat(), r.last.isoformat()] for r in dated][0]
    return "recurring" if any(r.every for r in near) else "none"


def _kind(want: Any, anchor: date) -> str:
    if isinstance(want, str):
        return want
    first, last = date.fromisoformat(want[0]), date.fromisoformat(want[1])
    return "ahead" if first > anchor else "past" if last < anchor else "current"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engramdb.bench.dates", description=__doc__.split("\n\n")[0])
    parser.add_argument("--locomo", default=None, help="locomo10.json [env ENGRAM_LOCOMO]")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    args = parser.parse_args(argv)
    conversations = locomo.load(args.locomo)
    labels = load_labels()
    results = {}
    for sample_ in labels["samples"]:
        drawn = sample(conversations, per_stratum=sample_["per_stratum"], seed=sample_["seed"],
                       exclude=ids(labels, sample_.get("exclude")))
        if drawn != [(t["conversation"], t["dia_id"], t["stratum"]) for t in sample_["turns"]]:
            print(f"the {sample_['name']} labels are not the seeded sample of this data", file=sys.stderr)
            return 1
        results[sample_["name"]] = score(conversations, sample_)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for name, result in results.items():
        print(f"{name}: {result['turns']} turns")
        for key, row in result["tally"].items():
            print(f"  {key:18} {row['right']:3}/{row['total']:<3} {row['share']:.0%}")
        for miss in result["misses"]:
            print(f"  miss {miss['conversation']} {miss['dia_id']} {miss['expression']!r}: expected "
                  f"{miss['expected']}, got {miss['got']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
