"""Ingest throughput: chat turns through `Memory.add`, embedding included, in batches.

Two shapes (`--shape`): `short`, LoCoMo's turns one by one in adds of `batch`; `long`, a
user history of LONG_MESSAGES long messages (~LONG_TOKENS tokens in all, at 4 characters a
token) made by joining each LoCoMo session's turns as "Speaker: text" lines, added session
by session, as the issue-14 floor describes it (every word embedded, fully distilled)."""

from __future__ import annotations

import json
import resource
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..memory import Memory
from ..providers import Embedder, make_embedder
from ..types import Scope
from . import locomo as locomo_data
from . import synthetic
from .stats import latency_summary, peak_rss_mb


class TimedEmbedder:
    """Wraps an embedder and adds up the time spent in `embed` by the thread that made it
    (the one calling `add`): background distillation embeds its memories meanwhile, on
    its own thread, and that time is no part of storing."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.seconds = 0.0
        self._caller = threading.get_ident()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            if threading.get_ident() == self._caller:
                self.seconds += time.perf_counter() - start


def locomo_turns(path: Path) -> list[dict]:
    """Every dialogue turn of LoCoMo, in order, as messages (speaker A as the user)."""
    data = json.loads(Path(path).read_text())
    out = []
    for sample in data:
        conv = sample["conversation"]
        speaker_a = conv.get("speaker_a")
        sessions = sorted(
            (k for k in conv if k.startswith("session_") and isinstance(conv[k], list)),
            key=lambda k: int(k.split("_")[1]),
        )
        for key in sessions:
            for turn in conv[key]:
                text = (turn.get("text") or "").strip()
                if text:
                    role = "user" if turn.get("speaker") == speaker_a else "assistant"
                    out.append({"role": role, "content": text, "name": turn.get("speaker")})
    return out


SHAPES = ("short", "long")
LONG_MESSAGES = 500
LONG_TOKENS = 120_000
# A long message holds a session's turns until it reaches the next of these sizes (in
# characters, taken in turn): mean ~990 characters (~250 tokens), 180 of the 500 past MiniLM's
# 256 word pieces, as assistant answers and pasted texts are.
LONG_SIZES = (360, 600, 950, 1420, 2200)


def long_history(path: Path, messages: int = LONG_MESSAGES) -> list[tuple[str, list[dict]]]:
    """The first `messages` long messages of LoCoMo, by session: (session id, messages).
    Each message is "Speaker: text" lines of consecutive turns of one session, sent as the
    user's, with the session's date; no name (several speakers speak in it)."""
    sessions: list[tuple[str, list[dict]]] = []
    count = 0
    for conv in locomo_data.load(path):
        for session_id, turns in conv.sessions:
            at = turns[0]["timestamp"] if turns else ""
            joined, lines, size = [], [], 0
            for turn in turns:
                line = f"{turn['name']}: {turn['content']}"
                lines.append(line)
                size += len(line) + 1
                if size >= LONG_SIZES[(count + len(joined)) % len(LONG_SIZES)]:
                    joined.append(lines)
                    lines, size = [], 0
            if lines:
                joined.append(lines)
            joined = joined[:messages - count]
            sessions.append((f"{conv.sample_id}/{session_id}",
                             [{"role": "user", "content": "\n".join(group), "timestamp": at} for group in joined]))
            count += len(joined)
            if count >= messages:
                return sessions
    return sessions


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run(
    *,
    shape: str = "short",
    turns: int | None = None,
    batch: int = 128,
    store: str | Path | None = None,
    embedder: str = "minilm",
    locomo: str | Path | None = None,
    extractor: str | None = None,
) -> dict[str, Any]:
    """Add `turns` turns, `batch` per `Memory.add`, into a fresh store; report rates.
    Distillation (the library default, or `extractor`) runs in the background as in
    real use; the time to finish it after the last add is reported apart, and the time
    from the first add to fully distilled. `shape="long"`: the long history
    (`long_history`, `turns` long messages, default LONG_MESSAGES), one add per session;
    `batch` is not used. CPU seconds are this process's and its children's (the
    extraction process), from the first add until the store is closed."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")
    if shape == "long":
        if locomo is None or not Path(locomo).is_file():
            raise ValueError("the long shape is built from LoCoMo: pass its path")
        sessions = long_history(Path(locomo), turns or LONG_MESSAGES)
        source = f"locomo ({Path(locomo).name}), long messages"
        adds = [(session_id, chunk) for session_id, chunk in sessions if chunk]
    else:
        if locomo is not None and Path(locomo).is_file():
            pool, source = locomo_turns(Path(locomo)), f"locomo ({Path(locomo).name})"
        else:
            pool, source = list(synthetic.turns(turns or 5000)), "synthetic"
        count = turns or len(pool)
        flat = [pool[i % len(pool)] for i in range(count)]
        adds = [(f"s{index}", flat[start:start + batch]) for index, start in enumerate(range(0, count, batch))]
    messages = [m for _, chunk in adds for m in chunk]
    count = len(messages)

    with tempfile.TemporaryDirectory(prefix="engram-bench-") as tmp:
        path = Path(store) if store is not None else Path(tmp) / "ingest.db"
        started = time.perf_counter()
        timed = TimedEmbedder(make_embedder(Config(embedder=embedder)))
        timed.embed([m["content"] for m in messages[:32]])  # warm-up, not counted
        load_s = time.perf_counter() - started
        timed.seconds = 0.0
        mem = Memory(path, config=Config(embedder=embedder, extractor=extractor), embedder=timed)
        mem.embedder  # checks the store's embedder before the clock starts
        latencies, store_latencies = [], []
        cpu_self, cpu_children = _cpu_s(resource.RUSAGE_SELF), _cpu_s(resource.RUSAGE_CHILDREN)
        begin = time.perf_counter()
        for session_id, chunk in adds:
            t0, e0 = time.perf_counter(), timed.seconds
            mem.add(chunk, user_id="bench", session_id=session_id)
            latencies.append(time.perf_counter() - t0)
            store_latencies.append((time.perf_counter() - t0 - (timed.seconds - e0)) / len(chunk))
        total_s = time.perf_counter() - begin
        embed_s = timed.seconds
        flush_start = time.perf_counter()
        distilled = mem.flush(3600)
        distill_s = time.perf_counter() - flush_start
        to_distilled_s = time.perf_counter() - begin
        kinds = mem.stats(user_id="bench").get("by_kind", {})
        stored = kinds.get("turn", 0)
        mem.close()  # ends the extraction process, whose CPU time then counts as a child's
        cpu_self = _cpu_s(resource.RUSAGE_SELF) - cpu_self
        cpu_children = _cpu_s(resource.RUSAGE_CHILDREN) - cpu_children

    other_s = total_s - embed_s
    return {
        "benchmark": "ingest",
        "shape": shape,
        "source": source,
        "embedder": timed.name,
        "turns": count,
        "stored": stored,
        "batch": batch if shape == "short" else None,
        "adds": len(adds),
        "tokens": round(sum(len(m["content"]) for m in messages) / 4),
        "model_load_and_warmup_s": round(load_s, 3),
        "total_s": round(total_s, 3),
        "turns_per_s": round(count / total_s, 1),
        "embed_s": round(embed_s, 3),
        "embed_turns_per_s": round(count / embed_s, 1) if embed_s else None,
        "store_s": round(other_s, 3),
        "store_turns_per_s": round(count / other_s, 1) if other_s > 0 else None,
        "embed_share": round(embed_s / total_s, 3),
        "add_latency_ms": latency_summary(latencies),
        "store_latency_per_turn_ms": latency_summary(store_latencies),
        "extractor": extractor or "default",
        "distill_finished": distilled,
        "distill_after_last_add_s": round(distill_s, 3),
        "first_add_to_distilled_s": round(to_distilled_s, 3),
        "distilled_turns_per_s": round(count / to_distilled_s, 1),
        "tokens_per_s_stored": round(sum(len(m["content"]) for m in messages) / 4 / total_s, 1),
        "cpu_s": {"process": round(cpu_self, 2), "children": round(cpu_children, 2)},
        "derived_memories": {k: v for k, v in kinds.items() if k != "turn"},
        "mean_chars_per_turn": round(float(np.mean([len(m["content"]) for m in messages])), 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def _scope() -> Scope:
    return Scope("bench")
