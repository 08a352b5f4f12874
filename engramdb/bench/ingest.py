"""Ingest throughput: chat turns through `Memory.add`, embedding included, in batches."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..memory import Memory
from ..providers import Embedder, make_embedder
from ..types import Scope
from . import synthetic
from .stats import latency_summary, peak_rss_mb


class TimedEmbedder:
    """Wraps an embedder and adds up the time spent in `embed`."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.seconds = 0.0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
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


def run(
    *,
    turns: int | None = None,
    batch: int = 128,
    store: str | Path | None = None,
    embedder: str = "minilm",
    locomo: str | Path | None = None,
    extractor: str | None = None,
) -> dict[str, Any]:
    """Add `turns` turns, `batch` per `Memory.add`, into a fresh store; report rates.
    Distillation (the library default, or `extractor`) runs in the background as in
    real use; the time to finish it after the last add is reported apart."""
    if locomo is not None and Path(locomo).is_file():
        pool, source = locomo_turns(Path(locomo)), f"locomo ({Path(locomo).name})"
    else:
        pool, source = list(synthetic.turns(turns or 5000)), "synthetic"
    count = turns or len(pool)
    messages = [pool[i % len(pool)] for i in range(count)]

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
        begin = time.perf_counter()
        for index, start in enumerate(range(0, count, batch)):
            chunk = messages[start:start + batch]
            t0, e0 = time.perf_counter(), timed.seconds
            mem.add(chunk, user_id="bench", session_id=f"s{index}")
            latencies.append(time.perf_counter() - t0)
            store_latencies.append((time.perf_counter() - t0 - (timed.seconds - e0)) / len(chunk))
        total_s = time.perf_counter() - begin
        embed_s = timed.seconds
        flush_start = time.perf_counter()
        distilled = mem.flush(3600)
        distill_s = time.perf_counter() - flush_start
        kinds = mem.stats(user_id="bench").get("by_kind", {})
        stored = kinds.get("turn", 0)
        mem.close()

    other_s = total_s - embed_s
    return {
        "benchmark": "ingest",
        "source": source,
        "embedder": timed.name,
        "turns": count,
        "stored": stored,
        "batch": batch,
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
        "derived_memories": {k: v for k, v in kinds.items() if k != "turn"},
        "mean_chars_per_turn": round(float(np.mean([len(m["content"]) for m in messages])), 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def _scope() -> Scope:
    return Scope("bench")
