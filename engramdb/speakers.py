"""Speaker routing: when a query names who said something, prefer what they said.

"What books has Tim read?" is answered by Tim's own turns ("I just finished Harry
Potter"), which rarely repeat his name; the keyword index sees the speaker's name (it is
indexed with each turn) but the embedding of a turn does not. So when the query names
one or more of the candidates' speakers, the dense list keeps only their turns and their
turns form one more ranked list for fusion (retrieval.fuse). Nothing is filtered away:
other speakers' turns still come through the keyword list and the session ranks. When
the query names no speaker (or names every speaker), nothing changes.

On LoCoMo, 96% of the evidence of a question that names one speaker was said by that
speaker; with this, evidence recall within 2,000 tokens rose 0.875 -> 0.88 and multi-hop
within 2,000 0.67 -> 0.70 (docs/benchmarks.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from .types import Record, ScoredId


def named_speakers(query: str, records: Iterable[Record]) -> frozenset[str]:
    """The speaker names (Record.name) of `records` that `query` mentions as whole words,
    ignoring case."""
    return mentioned_names(query, {record.name for record in records if record.name})


def mentioned_names(query: str, names: Iterable[str]) -> frozenset[str]:
    """The `names` (of more than one character) that `query` mentions as whole words,
    ignoring case."""
    return frozenset(name for name in names if name and len(name.strip()) > 1 and _mentions(query, name.strip()))


def without_names(query: str, names: Iterable[str]) -> str:
    """`query` without the whole-word mentions of `names` (and their possessive "'s"),
    ignoring case, its spaces squeezed: "What activities does Melanie partake in?" ->
    "What activities does partake in?". The dense list of a query that names speakers
    is searched with this (Memory.search): speaker routing ranks by speaker already, and
    in the query's embedding the name only rewards texts that repeat it."""
    out = query
    for name in sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True):
        out = re.sub(rf"(?<!\w){re.escape(name)}(?:['\u2019]s)?(?!\w)", " ", out, flags=re.IGNORECASE)
    return " ".join(out.split())


def _mentions(query: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", query, re.IGNORECASE) is not None


def said_by(ranking: Sequence[ScoredId], records: Mapping[int, Record], names: frozenset[str]) -> list[ScoredId]:
    """The items of `ranking` said by one of `names`, in order; empty when that is none
    of them or all of them (a list that keeps everything does not discriminate)."""
    if not names:
        return []
    kept = [item for item in ranking if item.rowid in records and _about(records[item.rowid]) in names]
    return kept if len(kept) < len(ranking) else []


def _about(record: Record) -> str | None:
    """Who a record speaks for: a turn's speaker, a derived memory's subject."""
    return record.name if record.kind == "turn" else record.metadata.get("subject")
