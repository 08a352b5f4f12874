"""`engram bench locomo`: evidence recall of Engram's read path on LoCoMo, beside
reference retrievers run on the same store (BM25 alone, dense alone, everything).

Recall@k: the share of a question's evidence turns found in the `sources` of the top-k
hits. Recall within B tokens: the same, over the hits that fit in B tokens of returned
text, counting a token as 4 characters. The `recall()` row asks Memory.recall for a
block of B tokens and counts the evidence among its memories' sources: what a caller of
context() really gets, its labels and dates paid for out of the budget."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..memory import Memory
from ..stores.filters import Condition
from ..types import Scope
from .locomo import CATEGORIES, Conversation, Question
from .stats import latency_summary

KS = (5, 10, 20)
BUDGETS = (1000, 2000)
DEPTH = 200  # hits asked of each retriever: enough to fill the largest budget


@dataclass(frozen=True)
class Returned:
    text: str
    sources: list[str]


Retriever = Callable[[Memory, Conversation, Question], list[Returned]]


def tokens(text: str) -> float:
    return len(text) / 4


def engram(mem: Memory, conv: Conversation, q: Question) -> list[Returned]:
    return [Returned(h.text, h.sources) for h in mem.search(q.text, user_id=conv.sample_id, limit=DEPTH)]


TURNS_ONLY = [Condition("kind", "eq", "turn")]  # the reference rows search the raw turns alone


def bm25(mem: Memory, conv: Conversation, q: Question) -> list[Returned]:
    found = mem.store.keyword_search(Scope(conv.sample_id), q.text, TURNS_ONLY, DEPTH)
    return _records(mem, conv, [f.rowid for f in found])


def dense(mem: Memory, conv: Conversation, q: Question) -> list[Returned]:
    vector = mem.embedder.embed([q.text])[0]
    found = mem.store.vector_search(Scope(conv.sample_id), vector, TURNS_ONLY, DEPTH)
    return _records(mem, conv, [f.rowid for f in found])


def _records(mem: Memory, conv: Conversation, rowids: list[int]) -> list[Returned]:
    records = mem.store.by_rowids(rowids, Scope(conv.sample_id))
    return [Returned(records[r].text, records[r].sources) for r in rowids if r in records]


RETRIEVERS: dict[str, Retriever] = {"bm25 (turns)": bm25, "dense (turns)": dense, "engram": engram}
BLOCK_ROW = "engram recall()"


def ingest(mem: Memory, conversations: Sequence[Conversation]) -> tuple[float, int]:
    """Add every conversation not yet in the store; returns the seconds spent and the
    turns added (0 when the store already held them all)."""
    start = time.perf_counter()
    added = 0
    for conv in conversations:
        if _turns(mem, conv) == conv.turn_count:
            continue
        mem.forget(user_id=conv.sample_id)
        for session_id, messages in conv.sessions:
            added += len(mem.add(messages, user_id=conv.sample_id, session_id=session_id))
    return time.perf_counter() - start, added


def _turns(mem: Memory, conv: Conversation) -> int:
    return mem.stats(user_id=conv.sample_id).get("by_kind", {}).get("turn", 0)


def score(evidence: frozenset[str], returned: list[Returned]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in KS:
        found = {s for item in returned[:k] for s in item.sources}
        out[f"R@{k}"] = len(evidence & found) / len(evidence)
    for budget in BUDGETS:
        used, found = 0.0, set()
        for item in returned:
            used += tokens(item.text)
            if used > budget:
                break
            found.update(item.sources)
        out[f"R≤{budget}"] = len(evidence & found) / len(evidence)
    return out


def questions_of(conversations: Sequence[Conversation]) -> list[tuple[Conversation, Question]]:
    """The scored questions: categories 1-4 with evidence (5 is adversarial)."""
    return [(c, q) for c in conversations for q in c.questions if q.category in (1, 2, 3, 4) and q.evidence]


def evaluate(mem: Memory, conversations: Sequence[Conversation], retrievers: Sequence[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    questions = questions_of(conversations)
    for name in retrievers:
        retrieve = RETRIEVERS[name]
        per_cat: dict[str, list[dict[str, float]]] = defaultdict(list)
        latencies = []
        for conv, q in questions:
            start = time.perf_counter()
            returned = retrieve(mem, conv, q)
            latencies.append(time.perf_counter() - start)
            result = score(q.evidence, returned)
            per_cat[CATEGORIES[q.category]].append(result)
            per_cat["overall"].append(result)
        rows[name] = {
            "metrics": {cat: _mean(items) for cat, items in per_cat.items()},
            "latency_ms": latency_summary(latencies),
        }
    rows[BLOCK_ROW] = evaluate_blocks(mem, questions)
    total_tokens = [sum(tokens(m["content"]) for _, ms in c.sessions for m in ms) for c in conversations]
    rows["everything"] = {
        "metrics": {"overall": {**{f"R@{k}": 1.0 for k in KS}, **{f"R≤{b}": 0.0 for b in BUDGETS}}},
        "tokens_per_conversation": round(float(np.mean(total_tokens))),
    }
    return {"questions": len(questions), "rows": rows}


def evaluate_blocks(mem: Memory, questions: Sequence[tuple[Conversation, Question]]) -> dict[str, Any]:
    """Recall within each budget of the blocks Memory.recall assembles, and where the
    largest budget's block shows its first evidence line: `lead≤1000` is the share of
    questions whose first evidence line starts within 1,000 characters of the block's
    start (a small reader takes what comes first), `lead chars` the characters before it
    (median over the blocks that hold evidence)."""
    per_cat: dict[str, list[dict[str, float]]] = defaultdict(list)
    latencies = []
    leads: list[int] = []
    for conv, q in questions:
        result = {}
        for budget in BUDGETS:
            start = time.perf_counter()
            block = mem.recall(q.text, user_id=conv.sample_id, budget_tokens=budget)
            latencies.append(time.perf_counter() - start)
            result[f"R≤{budget}"] = len(q.evidence & set(block.sources)) / len(q.evidence)
        lead = evidence_lead(block, q.evidence)
        result[f"lead≤{LEAD_CHARS}"] = float(lead is not None and lead < LEAD_CHARS)
        if lead is not None:
            leads.append(lead)
        per_cat[CATEGORIES[q.category]].append(result)
        per_cat["overall"].append(result)
    return {"metrics": {cat: _mean(items) for cat, items in per_cat.items()}, "latency_ms": latency_summary(latencies),
            "lead_chars_p50": int(np.median(leads)) if leads else None}


LEAD_CHARS = 1000


def evidence_lead(block: Any, evidence: frozenset[str]) -> int | None:
    """The characters of `block.text` before the line of its first memory that rests on
    an evidence turn (None: no such memory). The block is the preamble, then one line
    per hit in `block.hits` order (block.py)."""
    lines = block.text.split("\n")
    offset = len(lines[0]) + 1
    for hit, text in zip(block.hits, lines[1:]):
        if evidence & set(hit.sources):
            return offset
        offset += len(text) + 1
    return None


SAMPLE_SEED = 11  # the answering sample's seed: every run answers the same questions


def stratified(questions: Sequence[tuple[Conversation, Question]], count: int | None,
               seed: int = SAMPLE_SEED) -> list[tuple[Conversation, Question]]:
    """A fixed sample of `count` questions (all when None), as many of each category
    1-4 as the count allows (30 -> 8 multi-hop, 8 temporal, 7 open-domain, 7
    single-hop), drawn at random with `seed` within each category, returned in the
    dataset's order. A category with too few questions gives its share to the others."""
    if count is None or count >= len(questions):
        return list(questions)
    by_cat: dict[int, list[int]] = defaultdict(list)
    for index, (_, q) in enumerate(questions):
        by_cat[q.category].append(index)
    quota = dict.fromkeys(sorted(by_cat), 0)
    while sum(quota.values()) < count:  # one more to each category that still has questions, in turn
        for cat in quota:
            if sum(quota.values()) < count and quota[cat] < len(by_cat[cat]):
                quota[cat] += 1
    rng = random.Random(seed)
    chosen = sorted(i for cat, n in quota.items() for i in rng.sample(by_cat[cat], n))
    return [questions[i] for i in chosen]


def _mean(items: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(float(np.mean([i[key] for i in items])), 3) for key in items[0]} | {"n": len(items)}


def run(store: Path | str, conversations: Sequence[Conversation], retrievers: Sequence[str] = tuple(RETRIEVERS),
        embedder: str = "minilm", answering: Callable[[Memory, list], dict[str, Any]] | None = None,
        answer_questions: int | None = None, extractor: str = "none", topics: bool = False,
        link_search: bool = False, search: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ingest, score retrieval, and with `answering` (bench/answer.py) answer a fixed
    stratified sample of `answer_questions` questions (all when None). With an `extractor`, the
    turns are distilled too and the derived memories compete for the budget; with `topics`,
    topic memories (living/topics.py) are built too and compete as well; `search` sets
    read-path switches of Config (graph_search, …)."""
    if isinstance(store, Path):
        store.parent.mkdir(parents=True, exist_ok=True)
    config = Config(embedder=embedder, extractor=extractor, topics=topics, link_search=link_search, **(search or {}))
    with Memory(store, config=config) as mem:
        seconds, added = ingest(mem, conversations)
        flush_start = time.perf_counter()
        mem.flush(None)
        distill_s = time.perf_counter() - flush_start
        result = evaluate(mem, conversations, retrievers)
        result["extractor"] = extractor
        result["topics"] = topics
        result["link_search"] = link_search
        result["search"] = {"graph_search": config.graph_search, "query_parts": config.query_parts,
                            "query_anchors": config.query_anchors,
                            "dense_without_speakers": config.dense_without_speakers,
                            "dense_feedback": config.dense_feedback}
        result["graph_edges"] = sum(mem.store.graph_size(c.sample_id) for c in conversations)
        result["distill_after_ingest_s"] = round(distill_s, 1)
        result["derived"] = {k: v for k, v in mem.stats().get("by_kind", {}).items() if k != "turn"}
        if answering is not None:
            result["answers"] = answering(mem, stratified(questions_of(conversations), answer_questions))
    result["ingest_s"] = round(seconds, 1)
    result["turns_added"] = added  # 0: the store was reused, ingest_s is only the check
    result["turns"] = sum(c.turn_count for c in conversations)
    result["conversations"] = len(conversations)
    result["embedder"] = embedder
    return result
