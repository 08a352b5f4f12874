"""Thoughts (Think-in-Memory): conclusions an agent reached, stored as derived memories of
kind "thought", linked (`derived_from`) to the memories and turns they rest on.

Pure decisions, no I/O (`Memory.think` and the reflection job do the reading and
writing):

- what a thought may be (`check_thought`): text as `add()` takes it, one to
  `MAX_SOURCES` distinct source ids;
- when two thoughts are one (`mergeable`): their stored vectors are close (cosine at
  least `Config.thought_merge_threshold`) and they agree on every number, date and
  negation (a vector barely tells "Tom ran a marathon in 2023" from "… in 2024", or
  "likes" from "does not like").

The lifecycle of a thought follows its sources (stores/thoughts_sql.py): a source
superseded, retracted, outdated or merged retires it, that source current again
reinstates it, a source erased erases it (lifecycle.engine: a thought never suffices
on one source, so the derivation rule's cascade erases it)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidInputError
from ..types import MAX_ID_CHARS, check_text

KIND = "thought"
MAX_SOURCES = 100
MERGE_CANDIDATES = 5  # nearest current thoughts weighed for a merge
# Measured with the default embedder (MiniLM) on living/thought_pairs.py: every "same
# conclusion" pair scores >= 0.870, every "different conclusion" pair <= 0.852; 0.86 merges
# 25/25 of the first and 0/25 of the second (docs/benchmarks.md, "Merging thoughts").
MERGE_THRESHOLD = 0.86

_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_WORD = re.compile(r"[a-z]+(?:['’][a-z]+)?")
NUMBER_WORDS = frozenset("""zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand
million billion first second third fourth fifth sixth seventh eighth ninth tenth once twice half dozen""".split())
DATE_WORDS = frozenset("""january february march april june july august september october november december
jan feb apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday
yesterday today tomorrow tonight last next ago past previous upcoming recently soon later earlier spring summer
autumn winter morning evening weekend""".split())
NEGATIONS = frozenset("""not no never none nobody nothing nowhere neither nor without cannot dislike dislikes
disliked hate hates hated stopped quit longer""".split())


def check_thought(text: Any, sources: Any, *, max_chars: int) -> tuple[str, list[str]]:
    """The text and the distinct source ids of a thought, or InvalidInputError."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("text must be a non-empty string")
    if len(text) > max_chars:
        raise InvalidInputError(f"text has {len(text)} characters; the limit is {max_chars}")
    if "\x00" in text:
        raise InvalidInputError("text contains a NUL character")
    check_text("text", text)
    if isinstance(sources, (str, bytes)) or not isinstance(sources, (list, tuple)):
        raise InvalidInputError(f"sources must be a list of memory ids, got {type(sources).__name__}")
    if not sources:
        raise InvalidInputError("a thought rests on at least one source: pass sources=[memory or turn ids]")
    ids: list[str] = []
    for index, source in enumerate(sources):
        if not isinstance(source, str) or not source:
            raise InvalidInputError(f"sources[{index}] must be a non-empty memory id string")
        if len(source) > MAX_ID_CHARS:
            raise InvalidInputError(f"sources[{index}] is {len(source)} characters long; the limit is {MAX_ID_CHARS}")
        check_text(f"sources[{index}]", source)
        ids.append(source)
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_SOURCES:
        raise InvalidInputError(f"a thought has at most {MAX_SOURCES} sources, got {len(ids)}")
    return text, ids


def details(text: str) -> tuple[frozenset[str], frozenset[str], bool]:
    """What a vector does not see: the numbers, the date words, and whether it is negated."""
    lowered = text.lower()
    words = _WORD.findall(lowered)
    numbers = set(_NUMBER.findall(lowered)) | {w for w in words if w in NUMBER_WORDS}
    dates = frozenset(w for w in words if w in DATE_WORDS)
    negated = any(w in NEGATIONS or w.endswith("n't") or w.endswith("n’t") for w in words)
    return frozenset(numbers), dates, negated


def same_details(a: str, b: str) -> bool:
    return details(a) == details(b)


def mergeable(a: str, b: str, cosine: float, threshold: float = MERGE_THRESHOLD) -> bool:
    """Two thoughts say one conclusion: close in meaning, equal in numbers, dates, negation."""
    return cosine >= threshold and same_details(a, b)


def sources_of(records: Sequence[Any]) -> list[str]:
    """A thought's provenance (`Record.sources`): the message ids its sources came from."""
    return list(dict.fromkeys(s for r in records for s in r.sources))
