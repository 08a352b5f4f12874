"""The entity graph and Personalized PageRank over it (HippoRAG 2), as pure functions.

Nodes are memories (turns and derived memories) and the phrases they mention (entities
and nouns the offline pipeline found, `extract/offline.py` notes); an edge joins a
memory to each phrase it mentions, weighted by how rare the phrase is among the
candidates. Search seeds PageRank with the phrases the query names and its best fused
candidates, and the memories ranked by the walk are one more list for fusion
(retrieval.fuse): a memory that shares a rare phrase with the best candidates ("my home
country" … "my home country, Sweden") climbs, though it shares no word with the query.

The graph is read for the candidates only (every filter of the search still holds, and
the cost is bounded by the candidate depth, not by the size of the store). Phrases are
keys made by `phrase_key`: lower case, no leading article or possessive, the last word
singular, so that "books", "the book" and "Book" are one node."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .types import ScoredId

DAMPING = 0.5  # HippoRAG's: half of the walk's mass goes back to the seeds at every step
ITERATIONS = 16
SEED_HITS = 5  # the best fused candidates that seed the walk
PHRASE_SHARE = 0.0  # of the seed mass given to the query's phrases (LoCoMo: 0.2, 0.5 and 1 no better than 0)
MAX_PHRASES = 16  # a memory's phrases kept in the graph (entities first)
MAX_PHRASE_WORDS = 4
_WORD = re.compile(r"[a-z0-9][a-z0-9'&.+-]*")
_LEADING = frozenset("a an the my our your his her their its this that these those some".split())
_STOP = frozenset("""i me you he she it we they them us him one thing things time times day days way ways lot
lots bit kind sort stuff something anything everything nothing someone anyone everyone people person guy guys
yesterday today tomorrow week weeks month months year years weekend moment moments""".split())


def words(text: str) -> list[str]:
    """The lower-cased words of `text`, possessives dropped ("Caroline's" -> "caroline")."""
    out = []
    for word in _WORD.findall(text.lower().replace("\u2019", "'")):
        word = word.rstrip(".'-+&")
        if word.endswith("'s"):
            word = word[:-2]
        if word:
            out.append(word)
    return out


def singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def phrase_key(phrase: str) -> str | None:
    """The graph's key for a phrase, or None for one too vague to be a node."""
    found = words(phrase)
    while found and found[0] in _LEADING:
        found = found[1:]
    if not found or len(found) > MAX_PHRASE_WORDS:
        return None
    found[-1] = singular(found[-1])
    key = " ".join(found)
    if len(key) < 3 or key in _STOP or key.isdigit():
        return None
    return key


def phrase_keys(phrases: Iterable[str], limit: int = MAX_PHRASES) -> tuple[str, ...]:
    """Distinct keys of `phrases`, in their order, at most `limit`."""
    keys = dict.fromkeys(k for p in phrases if (k := phrase_key(p)) is not None)
    return tuple(keys)[:limit]


def grams(text: str) -> set[str]:
    """Every run of 1 to MAX_PHRASE_WORDS words of `text`, as phrase keys would write it."""
    found = words(text)
    out: set[str] = set()
    for start in range(len(found)):
        for end in range(start + 1, min(len(found), start + MAX_PHRASE_WORDS) + 1):
            run = found[start:end]
            out.add(" ".join([*run[:-1], singular(run[-1])]))
    return out


def mentioned(text: str, keys: Iterable[str]) -> tuple[str, ...]:
    """The keys that `text` says (a derived memory keeps the phrases of its turns it repeats)."""
    said = grams(text)
    return tuple(k for k in dict.fromkeys(keys) if k in said)


def personalized_pagerank(edges: Mapping[int, Sequence[str]], reset_records: Mapping[int, float],
                          reset_phrases: Mapping[str, float], *, damping: float = DAMPING,
                          iterations: int = ITERATIONS) -> dict[int, float]:
    """PageRank over the bipartite graph of `edges` (row -> its phrase keys), restarting
    at the seeds (weights need not sum to 1). An edge weighs the phrase's inverse
    document frequency among the rows, so a phrase every row says carries little.
    Returns each row's score (rows the walk never reaches score 0)."""
    rows = list(edges)
    vocab: dict[str, int] = {}
    row_of, phrase_of = [], []
    for i, row in enumerate(rows):
        for key in set(edges[row]):
            row_of.append(i)
            phrase_of.append(vocab.setdefault(key, len(vocab)))
    n = len(rows)
    size = n + len(vocab)
    if size == 0:
        return {}
    r, p = np.asarray(row_of, dtype=np.int64), np.asarray(phrase_of, dtype=np.int64)
    df = np.bincount(p, minlength=len(vocab)) if len(p) else np.zeros(len(vocab), dtype=np.int64)
    reset = np.zeros(size)
    index = {row: i for i, row in enumerate(rows)}
    for row, w in reset_records.items():
        if row in index:
            reset[index[row]] += w
    for key, w in reset_phrases.items():
        if key in vocab:
            reset[n + vocab[key]] += w
    if reset.sum() <= 0:
        return {}
    reset /= reset.sum()
    keep = (df[p] > 1) | (reset[n + p] > 0)  # a phrase one row says joins nothing (unless seeded)
    r, p = r[keep], p[keep] + n
    w = np.log1p(n / df[p - n]) if len(p) else np.zeros(0)
    s, d, w = np.concatenate([r, p]), np.concatenate([p, r]), np.concatenate([w, w])
    out_weight = np.bincount(s, weights=w, minlength=size)
    share = w / out_weight[s] if len(s) else w
    score = reset.copy()
    for _ in range(iterations):
        walked = np.bincount(d, weights=score[s] * share, minlength=size)
        dangling = score[out_weight == 0].sum()  # a node without edges gives its mass back to the seeds
        score = (1 - damping) * reset + damping * (walked + dangling * reset)
    return {row: float(score[i]) for i, row in enumerate(rows)}


def query_phrases(query: str, edges: Mapping[int, Sequence[str]]) -> dict[str, float]:
    """The candidates' phrases the query says, each weighted by its rarity among them."""
    said = grams(query)
    df: dict[str, int] = {}
    for keys in edges.values():
        for key in set(keys):
            if key in said:
                df[key] = df.get(key, 0) + 1
    return {key: math.log(1.0 + len(edges) / n) for key, n in df.items()}


def graph_ranking(query: str, fused: Sequence[ScoredId], edges: Mapping[int, Sequence[str]],
                  seeds: int | None = None, ignore: frozenset[str] = frozenset(),
                  sources: Mapping[int, Sequence[str]] | None = None) -> list[ScoredId]:
    """The candidates ranked by Personalized PageRank seeded from the `seeds` best of
    `fused` (and the query's phrases, by PHRASE_SHARE); only those the walk reaches
    through a phrase are ranked, the seeds left out (they lead the other lists already),
    and so is any candidate that shares a source turn with a seed (`sources`: a derived
    memory and its turn say the same phrases; the walk is for what they do not say).
    Phrases in `ignore` are no nodes (the speakers' names: a speaker's name joins most
    of a conversation, and speaker routing ranks by speaker already). A reached memory
    ranks by its score over the number of its phrases. Empty when the candidates have
    no graph."""
    if ignore:
        edges = {r: tuple(k for k in ks if k not in ignore) for r, ks in edges.items()}
    if not any(edges.values()):
        return []
    top = [item.rowid for item in fused[:SEED_HITS if seeds is None else seeds] if item.rowid in edges]
    named = query_phrases(query, edges)
    records = {row: 1.0 / (1 + rank) for rank, row in enumerate(top)}
    if named:
        total = sum(records.values()) or 1.0
        records = {row: w * (1 - PHRASE_SHARE) / total for row, w in records.items()}
        mass = sum(named.values())
        named = {key: w * PHRASE_SHARE / mass for key, w in named.items()}
    scores = personalized_pagerank(edges, records, named, damping=DAMPING, iterations=ITERATIONS)
    said = {s for row in records for s in (sources or {}).get(row, ())}
    # A memory's walk score per phrase it says: a long message saying sixteen phrases
    # gathers mass from each of them (PageRank's degree bias), and would outrank the
    # short turn that shares the one rare phrase with the seeds.
    reached = [(row, score / len(set(edges[row]))) for row, score in scores.items()
               if score > 0 and edges[row] and row not in records and not said.intersection((sources or {}).get(row, ()))]
    reached.sort(key=lambda pair: (-pair[1], pair[0]))
    return [ScoredId(row, score) for row, score in reached]
