"""`engram bench tenants`: what a server process holding many tenants costs once each
has distilled a turn: resident memory of the process and of its child processes, the
children and the threads. Every tenant's Memory shares the process's one background
runner and one extractor (lifecycle/runner.py)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..config import Config
from ..providers.fake import FakeEmbedder

TURN = "I live in Paris and I work at Airbus."


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children() -> list[int]:
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as children:
                found.update(int(pid) for pid in children.read().split())
        except OSError:
            continue
    return sorted(found)


def run(tenants: int = 20, extractor: str = "offline") -> dict[str, Any]:
    """Open `tenants` tenants of one SQLite store (the fake embedder: the model is shared
    anyway, and is not what is measured), add a turn to each, wait for distillation."""
    from ..server.tenants import TenantRegistry

    if not os.path.isdir("/proc/self/task"):
        raise RuntimeError("engram bench tenants reads /proc: Linux only")
    directory = Path(tempfile.mkdtemp(prefix="engram-bench-tenants-"))
    registry = TenantRegistry(directory / "engram.db", Config(extractor=extractor), embedder=FakeEmbedder())
    start = time.monotonic()
    try:
        for i in range(tenants):
            registry.memory(f"tenant{i}").add(TURN, user_id="u")
        for i in range(tenants):
            registry.memory(f"tenant{i}").flush(600)
        elapsed = time.monotonic() - start
        children = _children()
        own, kids = _rss_kb(os.getpid()), sum(_rss_kb(pid) for pid in children)
        return {
            "tenants": tenants, "extractor": extractor, "children": len(children),
            "threads": len(os.listdir("/proc/self/task")), "rss_mb": round(own / 1024),
            "children_rss_mb": round(kids / 1024), "total_rss_mb": round((own + kids) / 1024),
            "seconds": round(elapsed, 1),
        }
    finally:
        registry.close()
