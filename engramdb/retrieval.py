"""Pure read-path logic: fusing ranked lists and assembling context within a budget."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from .block import MAX_NAME_CHARS, PREAMBLE, Item, Layout, item, render, snippet, with_gloss
from .query import anchored_ranking
from .sessions import session_ranks
from .speakers import named_speakers, said_by
from .timeframe import timeframes, window_ranking
from .types import Hit, Record, ScoredId

GRAPH_WEIGHT = 1.0  # the entity graph's list in fusion, against 1 for each other list (LoCoMo: 1.5 cost R≤1000)
# Dense pseudo-relevance feedback (Rocchio): the query's vector moved towards its best
# candidates' vectors searches once more (Memory.search); the list it finds is fused at
# FEEDBACK_WEIGHT (LoCoMo: at 1 multi-hop within 2,000 rose more, but R@10 fell 0.015).
FEEDBACK_SEEDS = 3  # the best fused candidates the query moves towards
FEEDBACK_BETA = 0.75  # Rocchio's weight of their centroid, against 1 for the query
FEEDBACK_WEIGHT = 0.5
CHARS_PER_TOKEN = 4  # the approximation LoCoMo-style budgets use
CUT_MAX_CHARS = 480  # a memory cut to fit shows at most this much of itself
CUT_MIN_CHARS = 96  # less room than this left: a memory that does not fit whole is left out
FIRST_CUT_MIN_CHARS = 16  # ... unless the block holds nothing yet
# The smallest budget that holds a line whatever is stored: the preamble and a line with
# the longest date, the longest label and FIRST_CUT_MIN_CHARS of text.
MIN_BUDGET_TOKENS = -(-(len(PREAMBLE) + 1 + len("- [30 September 2000] ") + MAX_NAME_CHARS + len(" (assistant): ")
                        + FIRST_CUT_MIN_CHARS) // CHARS_PER_TOKEN)


def rrf(rankings: Sequence[Sequence[ScoredId]], k: int = 60) -> list[ScoredId]:
    """Reciprocal rank fusion: each list adds 1 / (k + rank) for every row it ranks
    (rows of equal score in a list share a rank)."""
    return rrf_ranks([_ranks(ranking) for ranking in rankings], k)


def rrf_ranks(ranks: Sequence[Mapping[int, int]], k: int = 60,
              weights: Sequence[float] | None = None) -> list[ScoredId]:
    """RRF over rank maps (rowid -> rank, 1 = best), which may hold ties; a list's
    `weights` entry scales what it adds (1 when not given)."""
    scores: dict[int, float] = {}
    for index, ranking in enumerate(ranks):
        weight = 1.0 if weights is None else weights[index]
        for rowid, rank in ranking.items():
            scores[rowid] = scores.get(rowid, 0.0) + weight / (k + rank)
    ordered = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
    return [ScoredId(rowid, score) for rowid, score in ordered]


Follower = Callable[[list[ScoredId]], list[ScoredId]]  # a fused ranking -> one more ranked list


def fuse(query: str, dense: Sequence[ScoredId], keyword: Sequence[ScoredId], records: Mapping[int, Record],
         k: int, follow: Follower | None = None, graph: Follower | None = None,
         parts: Sequence[Sequence[ScoredId]] = (), anchors: bool = False,
         feedback: Sequence[ScoredId] = ()) -> list[ScoredId]:
    """The candidates of both retrievers, best first: RRF of the dense list (only the
    turns of the speakers the query names, when it names some: speakers.py), the keyword
    list, the candidates' session ranks (sessions.py) and the named speakers' turns; then,
    when the query names a date, RRF again with the candidates said in that window
    (timeframe.py). With `follow`, the candidates it reaches from the fused ranking (its
    `relates_to` links, Memory.search) are one more list; with `graph`, the candidates
    ranked by Personalized PageRank over the entity graph seeded from the fused ranking
    (graph.py, Memory.search) are one more. `parts`: the fused rankings of the parts of
    a question that asks several things (query.parts), one list each; with `anchors`, a
    "before / after <event>" question's candidates on that side of the event's day
    (query.anchored_ranking) are one more list. `feedback`: the dense list of the query
    moved towards its best candidates (feedback_vector), one more list like the dense
    one, at FEEDBACK_WEIGHT."""
    speakers = named_speakers(query, records.values())
    dense = said_by(dense, records, speakers) or dense
    feedback = said_by(feedback, records, speakers) or feedback
    first = rrf([dense, keyword], k)  # first_ranking
    lists = [_ranks(dense), _ranks(keyword), session_ranks(keyword, [i.rowid for i in first], records),
             *(_ranks(part) for part in parts if part)]
    weights = [1.0] * len(lists)
    if feedback:
        lists.append(_ranks(feedback))
        weights.append(FEEDBACK_WEIGHT)
    fused = rrf_ranks(lists, k, weights)
    spoken = said_by(fused, records, speakers)
    if spoken:
        lists.append(_ranks(spoken))
        weights.append(1.0)
        fused = rrf_ranks(lists, k, weights)
    for more, weight in ((follow, 1.0), (graph, GRAPH_WEIGHT)):
        ranked = more(fused) if more is not None else []
        if ranked:
            lists.append(_ranks(ranked))
            weights.append(weight)
            fused = rrf_ranks(lists, k, weights)
    anchored = anchored_ranking(query, fused, records) if anchors else []
    if anchored:
        lists.append(_ranks(anchored))
        weights.append(1.0)
        fused = rrf_ranks(lists, k, weights)
    timed = window_ranking(fused, records, timeframes(query))
    return rrf_ranks(lists + [_ranks(timed)], k, weights + [1.0]) if timed else fused


def first_ranking(query: str, dense: Sequence[ScoredId], keyword: Sequence[ScoredId], records: Mapping[int, Record],
                  k: int) -> list[ScoredId]:
    """RRF of the dense list (only the named speakers' turns, as in `fuse`) and the
    keyword list: the candidates' first order, before sessions, speakers and the rest."""
    dense = said_by(dense, records, named_speakers(query, records.values())) or dense
    return rrf([dense, keyword], k)


def feedback_vector(query: np.ndarray, seeds: Sequence[np.ndarray], beta: float = FEEDBACK_BETA) -> np.ndarray | None:
    """Rocchio's feedback query for dense search: the unit query plus `beta` times the
    unit centroid of the `seeds` (the vectors of the best candidates), as a unit vector.
    What the best candidates share ("painting with the kids", "camping with my fam")
    pulls in memories like them that share no word with the question ("swimming with
    the kids"). None without seeds, or when the centroid is zero."""
    if not len(seeds):
        return None
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    centroid = np.mean(np.asarray(seeds, dtype=np.float32).reshape(len(seeds), -1), axis=0)
    q_norm, c_norm = float(np.linalg.norm(q)), float(np.linalg.norm(centroid))
    if q_norm == 0 or c_norm == 0:
        return None
    moved = q / q_norm + beta * centroid / c_norm
    return (moved / float(np.linalg.norm(moved))).astype(np.float32)


NEVER_ECHOES = frozenset({"turn", "thought"})  # evidence itself, and conclusions: more than their sources say


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
        if record.kind not in NEVER_ECHOES and record.sources and covered.issuperset(record.sources):
            continue
        if record.kind != "thought":  # a conclusion does not say what its sources say
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


class Assembled(NamedTuple):
    """A prompt block, the hits it holds (best first), and whether it holds every hit it
    was given, whole (repeats and echoes aside: what they say is in the block)."""

    text: str
    hits: list[Hit]
    complete: bool


def assemble(hits: Sequence[Hit], budget_tokens: int, query: str = "") -> Assembled:
    """Hits (best first) as a prompt block within budget (block.py renders it).

    Taken in rank order: a hit whose text repeats one already in the block is not shown
    again (its sources join those of the one shown); a derived memory whose every source
    turn the block shows whole is an echo and is left out (one taken before its turns
    came is dropped when they do); a hit too long for what is left of the budget is shown
    cut around what matched `query` (at most CUT_MAX_CHARS, at least CUT_MIN_CHARS unless
    the block is still empty), and only dropped when not even that fits."""
    room = budget_tokens * CHARS_PER_TOKEN
    chosen: list[Item | None] = []
    seen: dict[str, int] = {}
    covered: set[str] = set()  # sources of the turns shown whole
    layout = Layout()
    complete = True
    for hit in hits:
        key = same_text_key(hit.text)
        if key in seen:
            kept = chosen[seen[key]]
            if kept is not None:  # the repeat's sources join the one shown (a new Item, same length)
                sources = list(dict.fromkeys(kept.hit.sources + hit.sources))
                layout.remove(kept)
                chosen[seen[key]] = replace(kept, hit=replace(kept.hit, sources=sources))
                layout.add(chosen[seen[key]])
            continue
        if _echoes(hit, covered):
            continue
        entry = item(hit, gloss=False)
        if _no_room(entry, layout, room):
            complete = False
            continue  # not even cut: spare it the date gloss
        entry = with_gloss(entry)
        if layout.least_with(entry) > room or layout.length_with(entry) > room:
            complete = False
            entry = _cut(entry, layout, room, query)
            if entry is None:
                continue
        seen[key] = len(chosen)
        chosen.append(entry)
        layout.add(entry)
        if hit.kind == "turn" and not entry.cut:
            covered.update(hit.sources)
            for index, earlier in enumerate(chosen):
                if earlier is not None and _echoes(earlier.hit, covered):
                    layout.remove(earlier)
                    chosen[index] = None
    shown = [e for e in chosen if e is not None]
    return Assembled(render(shown), [e.hit for e in shown], complete)


def _echoes(hit: Hit, covered: set[str]) -> bool:
    return hit.kind not in NEVER_ECHOES and bool(hit.sources) and covered.issuperset(hit.sources)


def _no_room(entry: Item, layout: Layout, room: int) -> bool:
    """Whether `entry` cannot enter the block, not even cut."""
    return layout.least_with(entry) > room and _too_little_to_cut(entry, layout, room)


def _too_little_to_cut(entry: Item, layout: Layout, room: int) -> bool:
    least = FIRST_CUT_MIN_CHARS if layout.empty else CUT_MIN_CHARS
    return room - layout.least_with(entry.shortened("")) < least


def _cut(entry: Item, layout: Layout, room: int, query: str) -> Item | None:
    """`entry` cut to what is left of `room`, or None when too little is left."""
    if _too_little_to_cut(entry, layout, room):
        return None
    empty = entry.shortened("")
    least = FIRST_CUT_MIN_CHARS if layout.empty else CUT_MIN_CHARS
    left = room - layout.length_with(empty)
    if left < least:
        return None
    text = snippet(entry.text, query, min(left, CUT_MAX_CHARS))
    return None if text is None else entry.shortened(text)


def same_text_key(text: str) -> str:
    """Texts with the same key say the same thing; a block holds one of them."""
    return " ".join(text.lower().split())
