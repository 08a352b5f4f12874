"""Pure read-path logic: fusing ranked lists and assembling context within a budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from .sessions import session_ranks
from .speakers import named_speakers, said_by
from .timeframe import timeframes, window_ranking
from .types import Hit, Record, ScoredId

CHARS_PER_TOKEN = 4  # the approximation LoCoMo-style budgets use


def rrf(rankings: Sequence[Sequence[ScoredId]], k: int = 60) -> list[ScoredId]:
    """Reciprocal rank fusion: each list adds 1 / (k + rank) for every row it ranks
    (rows of equal score in a list share a rank)."""
    return rrf_ranks([_ranks(ranking) for ranking in rankings], k)


def rrf_ranks(ranks: Sequence[Mapping[int, int]], k: int = 60) -> list[ScoredId]:
    """RRF over rank maps (rowid -> rank, 1 = best), which may hold ties."""
    scores: dict[int, float] = {}
    for ranking in ranks:
        for rowid, rank in ranking.items():
            scores[rowid] = scores.get(rowid, 0.0) + 1.0 / (k + rank)
    ordered = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
    return [ScoredId(rowid, score) for rowid, score in ordered]


def fuse(query: str, dense: Sequence[ScoredId], keyword: Sequence[ScoredId], records: Mapping[int, Record],
         k: int) -> list[ScoredId]:
    """The candidates of both retrievers, best first: RRF of the dense list (only the
    turns of the speakers the query names, when it names some: speakers.py), the keyword
    list, the candidates' session ranks (sessions.py) and the named speakers' turns; then,
    when the query names a date, RRF again with the candidates said in that window
    (timeframe.py)."""
    speakers = named_speakers(query, records.values())
    dense = said_by(dense, records, speakers) or dense
    first = rrf([dense, keyword], k)
    lists = [_ranks(dense), _ranks(keyword), session_ranks(keyword, [i.rowid for i in first], records)]
    fused = rrf_ranks(lists, k)
    spoken = said_by(fused, records, speakers)
    if spoken:
        lists.append(_ranks(spoken))
        fused = rrf_ranks(lists, k)
    timed = window_ranking(fused, records, timeframes(query))
    return rrf_ranks(lists + [_ranks(timed)], k) if timed else fused


def without_echoes(ranking: Sequence[ScoredId], records: Mapping[int, Record]) -> list[ScoredId]:
    """Drop a derived memory (fact, event, …) whose every source turn is already said
    by a better-ranked result: it would spend the caller's budget on what they have.
    Turns are always kept: they are the evidence itself."""
    covered: set[str] = set()
    kept = []
    for item in ranking:
        record = records.get(item.rowid)
        if record is None:
            continue
        if record.kind != "turn" and record.sources and covered.issuperset(record.sources):
            continue
        covered.update(record.sources)
        kept.append(item)
    return kept


def _ranks(ranking: Sequence[ScoredId]) -> dict[int, int]:
    """Rank of each row, 1 = best; rows of equal score share the better rank (a list
    that cannot tell rows apart should not order them by accident)."""
    out: dict[int, int] = {}
    previous, shared = None, 0
    for rank, item in enumerate(ranking, start=1):
        if item.score != previous:
            previous, shared = item.score, rank
        out.setdefault(item.rowid, shared)
    return out


def estimate_tokens(text: str) -> int:
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


def assemble(hits: Sequence[Hit], budget_tokens: int) -> tuple[str, list[Hit]]:
    """Hits (best first) as a prompt block: deduplicated, within budget, grouped by
    session, sessions and lines in time order, each line dated. Returns the block and
    the hits it holds, best first; a hit whose text repeats one already in the block is
    not shown again, its sources join those of the one shown."""
    chosen: list[Hit] = []
    seen: dict[str, int] = {}
    block = ""
    for hit in hits:
        key = same_text_key(hit.text)
        if key in seen:
            kept = chosen[seen[key]]
            chosen[seen[key]] = replace(kept, sources=list(dict.fromkeys(kept.sources + hit.sources)))
            continue
        candidate = _render(chosen + [hit])
        if estimate_tokens(candidate) > budget_tokens:
            continue
        seen[key] = len(chosen)
        chosen.append(hit)
        block = candidate
    return block, chosen


def same_text_key(text: str) -> str:
    """Texts with the same key say the same thing; a block holds one of them."""
    return " ".join(text.lower().split())


def _render(hits: Sequence[Hit]) -> str:
    """Sessions in time order, each headed by its name and the time of its first line;
    a line repeats the time only where it differs from the line before (a date costs
    tokens the budget could spend on memories)."""
    sessions: dict[str | None, list[Hit]] = {}
    for hit in sorted(hits, key=lambda h: h.created_at):
        sessions.setdefault(hit.session_id, []).append(hit)
    blocks = []
    for session_id, items in sessions.items():
        first = _minute(items[0].created_at)
        title = f"## session {session_id}" if session_id else "## no session"
        lines = [f"{title} ({first})"]
        previous = first
        for hit in items:
            at = _minute(hit.created_at)
            stamp = "" if at == previous else f"[{at[11:] if at[:10] == previous[:10] else at}] "
            previous = at
            lines.append(f"- {stamp}{hit.name or hit.role or hit.kind}: {hit.text}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _minute(timestamp: str) -> str:
    return timestamp[:16].replace("T", " ")
