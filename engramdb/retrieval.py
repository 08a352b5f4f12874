"""Pure read-path logic: fusing ranked lists and assembling context within a budget."""

from __future__ import annotations

from collections.abc import Sequence

from .types import Hit, ScoredId

CHARS_PER_TOKEN = 4  # the approximation LoCoMo-style budgets use


def rrf(rankings: Sequence[Sequence[ScoredId]], k: int = 60) -> list[ScoredId]:
    """Reciprocal rank fusion: each list adds 1 / (k + rank) for every row it ranks."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item.rowid] = scores.get(item.rowid, 0.0) + 1.0 / (k + rank)
    ordered = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
    return [ScoredId(rowid, score) for rowid, score in ordered]


def estimate_tokens(text: str) -> int:
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


def render_line(hit: Hit) -> str:
    speaker = hit.name or hit.role or hit.kind
    return f"- [{hit.created_at[:16].replace('T', ' ')}] {speaker}: {hit.text}"


def assemble(hits: Sequence[Hit], budget_tokens: int) -> str:
    """Hits (best first) as a prompt block: deduplicated, within budget, grouped by
    session, sessions and lines in time order, each line dated."""
    chosen: list[Hit] = []
    seen: set[str] = set()
    block = ""
    for hit in hits:
        key = " ".join(hit.text.lower().split())
        if key in seen:
            continue
        candidate = _render(chosen + [hit])
        if estimate_tokens(candidate) > budget_tokens:
            continue
        seen.add(key)
        chosen.append(hit)
        block = candidate
    return block


def _render(hits: Sequence[Hit]) -> str:
    sessions: dict[str | None, list[Hit]] = {}
    for hit in sorted(hits, key=lambda h: h.created_at):
        sessions.setdefault(hit.session_id, []).append(hit)
    blocks = []
    for session_id, items in sessions.items():
        title = f"## session {session_id}" if session_id else "## no session"
        blocks.append("\n".join([title, *(render_line(h) for h in items)]))
    return "\n\n".join(blocks)
