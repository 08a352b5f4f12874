"""`engram bench activation`: time to first token with and without a kept state, for
stable blocks of N model tokens, on the packaged Qwen2.5-Coder-1.5B (llama-cpp-python).

For each size: a block of synthetic facts rendered as Engram renders them (block.py
through the proxy's layout), one of them the answer to the question, laid out as
`engram chat` lays it out (engramdb/activation/prompt.py). Then, in this order:
- cold: a fresh context reads the block and the turn, answers (greedy);
- read: the block read into a state and kept in a `StateCache` on disk (its file size is
  the disk per state; the packed bytes held while it is loaded, the RAM);
- cached: the state loaded from disk, only the turn evaluated, answered;
- the two answers compared, token for token (they must be identical).
With `--one-shot`, also the whole prompt evaluated in one go (llama.cpp's batches split
it elsewhere), compared too. Run it alone: the machine's load is printed with it."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..activation.cache import Entry, StateCache
from ..activation.engine import LlamaEngine
from ..activation.prompt import Block, conversation_segments, system_segments
from ..proxy import layout
from ..types import Hit

QUESTION = "Where do I keep my savings? Answer in one sentence."
ANSWER_FACT = "The user keeps their savings in a tin under the blue floorboard in the attic."
TOPICS = ("enjoys hiking in the", "has a cousin who lives in", "once bought a bicycle in", "learned to cook in",
          "went to a concert in", "keeps a notebook from", "visited a museum in", "met an old friend in")
PLACES = ("Lisbon", "Porto", "Madrid", "Berlin", "Oslo", "Kyoto", "Lima", "Quito", "Hanoi", "Cairo", "Accra")


def facts(count: int) -> list[str]:
    return [f"The user {TOPICS[i % len(TOPICS)]} {PLACES[(i * 7) % len(PLACES)]} (note {i + 1})."
            for i in range(count)]


def block_of(engine: Any, tokens: int) -> tuple[Block, list[int]]:
    """A block of about `tokens` model tokens (the system message's, at or just over)."""
    def render(count: int) -> tuple[Block, list[int]]:
        lines = facts(count)
        lines.insert(count // 2, ANSWER_FACT)
        hits = [Hit(id=f"mem_{i}", text=t, kind="fact", score=1.0, sources=[f"turn_{i}"], session_id="s1",
                    created_at="2024-01-01T10:00:00Z", valid_to=None, metadata={}) for i, t in enumerate(lines)]
        part = layout.section(layout.STABLE_TITLE, hits, 1_000_000)
        text = layout.system_message([part]).message["content"]
        block = Block(text, {h.id: h.text for h in hits})
        return block, engine.tokens(system_segments(block))

    low, high = 1, 8
    while len(render(high)[1]) < tokens:
        low, high = high, high * 2
    while low < high:  # the fewest facts that reach `tokens`
        mid = (low + high) // 2
        if len(render(mid)[1]) < tokens:
            low = mid + 1
        else:
            high = mid
    return render(low)


def _timed(engine: Any, tokens: list[int], prefix: int, state: bytes | None, max_tokens: int) -> tuple[float, str]:
    started = time.perf_counter()
    first = None
    parts = []
    for piece in engine.answer(tokens, prefix=prefix, state=state, max_tokens=max_tokens):
        if first is None:
            first = time.perf_counter() - started
        parts.append(piece)
    return (first if first is not None else time.perf_counter() - started), "".join(parts)


def _one_shot(engine: LlamaEngine, tokens: list[int], max_tokens: int) -> tuple[float, str]:
    engine.llm.reset()
    started = time.perf_counter()
    first, made = None, []
    for token in engine.llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        if first is None:
            first = time.perf_counter() - started
        if token == engine.llm.token_eos() or len(made) >= max_tokens:
            break
        made.append(token)
    text = engine.llm.detokenize(made).decode("utf-8", "replace")
    return first or 0.0, text.split("<|im_end|>")[0]


def run(*, sizes: Sequence[int], model: Path, threads: int | None, max_tokens: int, one_shot: bool,
        folder: Path | None = None) -> dict[str, Any]:
    n_ctx = max(sizes) + 512
    load_started = time.perf_counter()
    engine = LlamaEngine.load(model, n_ctx=n_ctx, n_threads=threads)
    loaded_s = time.perf_counter() - load_started
    rows = []
    with tempfile.TemporaryDirectory(prefix="engram-bench-activation-") as tmp:
        cache = StateCache(folder or Path(tmp) / "states", max_bytes=50 * 1024**3)
        for size in sizes:
            block, prefix = block_of(engine, size)
            suffix = engine.tokens(conversation_segments([{"role": "user", "content": QUESTION}]))
            tokens = prefix + suffix
            cold_s, cold = _timed(engine, tokens, len(prefix), None, max_tokens)
            read_started = time.perf_counter()
            state = engine.read(prefix)
            entry = cache.put(Entry(key=f"bench-{size}", model=engine.model_id, store="bench", tenant=None,
                                    user_id="bench", block_hash=block.hash, sources={}, tokens=len(prefix),
                                    bytes=len(state), created_at=time.time()), state)
            read_s = time.perf_counter() - read_started
            disk = (cache.folder / entry.file).stat().st_size
            del state
            engine.llm.reset()  # the context forgets the block: the cached answer must come from the file
            load_started = time.perf_counter()
            loaded = cache.get(entry.key)
            assert loaded is not None
            from_disk_s = time.perf_counter() - load_started
            cached_s, cached = _timed(engine, tokens, len(prefix), loaded, max_tokens)
            row = {"block_tokens": len(prefix), "turn_tokens": len(suffix), "ttft_cold_s": round(cold_s, 2),
                   "ttft_cached_s": round(cached_s + from_disk_s, 2), "state_read_s": round(read_s, 2),
                   "state_load_s": round(from_disk_s, 3), "disk_bytes": disk, "ram_bytes": len(loaded),
                   "identical": cold == cached, "answer": cold, "answer_cached": cached}
            if one_shot:
                shot_s, shot = _one_shot(engine, tokens, max_tokens)
                row.update(ttft_one_shot_s=round(shot_s, 2), identical_one_shot=shot == cold)
            rows.append(row)
            cache.drop([entry.key])
    return {"model": str(model), "model_id": engine.model_id, "threads": threads, "n_ctx": n_ctx,
            "model_load_s": round(loaded_s, 2), "max_tokens": max_tokens, "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "rows": rows}


def table(result: dict[str, Any]) -> list[str]:
    out = [f"model {Path(result['model']).name}, ctx {result['n_ctx']}, threads {result['threads'] or 'default'}, "
           f"{result['cpus']} CPUs, load average {result['load_average']}",
           f"{'block':>6} {'cold s':>8} {'cached s':>9} {'read s':>7} {'disk MB':>8} {'RAM MB':>7} identical"]
    for row in result["rows"]:
        out.append(f"{row['block_tokens']:>6} {row['ttft_cold_s']:>8} {row['ttft_cached_s']:>9} "
                   f"{row['state_read_s']:>7} {row['disk_bytes'] / 1e6:>8.1f} {row['ram_bytes'] / 1e6:>7.1f} "
                   f"{row['identical']}" + (f" (one shot: {row['identical_one_shot']}, {row['ttft_one_shot_s']} s)"
                                            if "identical_one_shot" in row else ""))
    out.append(f"answer: {result['rows'][0]['answer']!r}" if result["rows"] else "no rows")
    return out
