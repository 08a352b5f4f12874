"""`engram bench proxy`: the latency the memory proxy adds to a chat request.

A scripted OpenAI-compatible upstream (upstream.py) answers at once on 127.0.0.1; the
proxy (`engram proxy --no-auth`, a child process, as it runs in use) sits in front of it
over a store whose user already holds `--preload` turns; one client sends the same
questions straight to the upstream and through the proxy, alternating, one at a time
(httpx, keep-alive). What the proxy adds is the difference: the memory lookup (the
query's embedding, keyword and vector search, the block), the JSON re-encoding and the
extra hop (`lookup_ms`: the lookup alone, as the proxy timed it). Storing the exchange happens after the answer and is not in the figures, but
it runs during them (as in use); distillation is off unless `--extractor` says."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .upstream import ScriptedUpstream

USER = "bench-user"
TOPICS = ("hiking", "the bakery", "my sister", "the new job", "piano lessons", "the garden", "a trip to Oslo",
          "the dentist", "our dog", "the book club", "marathon training", "the flat upstairs")
START_S = 120.0


def _turns(count: int, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        topic = rng.choice(TOPICS)
        out.append({"role": "user" if i % 2 == 0 else "assistant",
                    "content": f"Turn {i}: something about {topic}, and {rng.choice(TOPICS)} on day {rng.randint(1, 28)}"})
    return out


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(statistics.median(ordered), 2), "p95": round(pick(0.95), 2), "max": round(ordered[-1], 2)}


def _start_proxy(store: Path, upstream_url: str, embedder: str, extractor: str, budget: int) -> tuple[Any, str]:
    env = {**os.environ, "ENGRAM_EMBEDDER": embedder, "ENGRAM_EXTRACTOR": extractor, "ENGRAM_CONFIG": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "engramdb.cli", "--store", f"sqlite:///{store}", "proxy", "--upstream", upstream_url,
         "--no-auth", "--port", "0", "--budget", str(budget), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + START_S
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line or time.monotonic() > deadline:
        process.kill()
        raise RuntimeError("the proxy did not start")
    return process, json.loads(line)["url"]


def run(*, requests: int = 200, preload: int = 1000, embedder: str = "minilm", extractor: str = "none",
        budget: int = 1500, stream: bool = False) -> dict[str, Any]:
    import httpx

    from ..config import Config
    from ..memory import Memory

    with tempfile.TemporaryDirectory(prefix="engram-bench-proxy-") as tmp, ScriptedUpstream() as upstream:
        store = Path(tmp) / "engram.db"
        started = time.monotonic()
        with Memory(f"sqlite:///{store}", config=Config(embedder=embedder, extractor="none")) as memory:
            turns = _turns(preload)
            for at in range(0, len(turns), 256):
                memory.add(turns[at:at + 256], user_id=USER, session_id=f"s{at // 256}")
        preload_s = time.monotonic() - started
        process, proxy_url = _start_proxy(store, upstream.url, embedder, extractor, budget)
        try:
            direct_ms: list[float] = []
            proxied_ms: list[float] = []
            injected = 0
            lookup_ms: list[float] = []
            rng = random.Random(11)
            with httpx.Client(timeout=60) as http:
                def call(base: str, question: str) -> tuple[float, httpx.Response]:
                    body = {"model": "stub-model", "stream": stream, "user": USER,
                            "messages": [{"role": "user", "content": question}]}
                    t0 = time.perf_counter()
                    if stream:
                        with http.stream("POST", base + "/chat/completions", json=body) as response:
                            for _ in response.iter_bytes():
                                pass
                    else:
                        response = http.post(base + "/chat/completions", json=body)
                    elapsed = (time.perf_counter() - t0) * 1000
                    response.raise_for_status()
                    return elapsed, response

                for i in range(10):  # warm both paths (connections, the first query's model calls)
                    call(upstream.url, "warm up"), call(proxy_url, f"warm up {i}")
                for i in range(requests):
                    question = f"what did I say about {rng.choice(TOPICS)}? ({i})"
                    direct, _ = call(upstream.url, question)
                    proxied, response = call(proxy_url, question)
                    direct_ms.append(direct)
                    proxied_ms.append(proxied)
                    injected += response.headers.get("x-engram-memory") == "injected"
                    if "x-engram-memory-ms" in response.headers:
                        lookup_ms.append(float(response.headers["x-engram-memory-ms"]))
        finally:
            process.terminate()
            process.wait(30)
    added = [p - d for p, d in zip(proxied_ms, direct_ms)]
    return {"requests": requests, "preload_turns": preload, "embedder": embedder, "extractor": extractor,
            "budget_tokens": budget, "stream": stream, "injected": injected, "preload_s": round(preload_s, 1),
            "direct_ms": _percentiles(direct_ms), "proxied_ms": _percentiles(proxied_ms),
            "added_ms": _percentiles(added), "lookup_ms": _percentiles(lookup_ms) if lookup_ms else None,
            "load_average": round(os.getloadavg()[0], 1), "cpus": os.cpu_count()}
