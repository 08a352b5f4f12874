"""What decay costs on LoCoMo, in simulated time (`python -m engramdb.bench.decay N DIR`).

Each session of the first N conversations is added, and distilled (offline extractor),
at its own date by Engram's clock; the questions are asked the day after the last
session, when memories not recalled since have faded. The distilled store is copied and
read with decay off and on (living/vitals.py), and `engram bench locomo`'s evidence
recall is scored on each copy."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..clock import parse_ts
from ..config import Config
from ..memory import Memory
from .locomo import Conversation, load
from .recall import evaluate

SETTINGS = {
    "decay off": Config(extractor="none"),
    "decay on (tau 30 d, threshold 0.05)": Config(extractor="none", decay=True),
    "decay on (tau 180 d, threshold 0.05)": Config(extractor="none", decay=True, decay_tau_days=180.0),
    "decay off, retention in ranking (weight 0.3, tau 180 d)": Config(extractor="none", retention_weight=0.3,
                                                                      decay_tau_days=180.0),
}


class _Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def distilled(conversations: list[Conversation], path: Path) -> None:
    """Each session added and distilled at its own date."""
    clock = _Clock(parse_ts(conversations[0].sessions[0][1][0]["timestamp"]))
    with Memory(path, config=Config(extractor="offline"), clock=clock) as mem:
        for conv in conversations:
            for session_id, messages in conv.sessions:
                clock.at = parse_ts(messages[0]["timestamp"])
                mem.add(messages, user_id=conv.sample_id, session_id=session_id)
                mem.flush(None)


def run(count: int, folder: Path) -> dict[str, Any]:
    conversations = load()[:count]
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / "distilled.db"
    if not base.exists():
        distilled(conversations, base)
    end = max(parse_ts(c.sessions[-1][1][-1]["timestamp"]) for c in conversations) + timedelta(days=1)
    out: dict[str, Any] = {}
    for index, (name, config) in enumerate(SETTINGS.items()):
        copy = folder / f"read-{index}.db"
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{base}{suffix}").exists():
                shutil.copy(f"{base}{suffix}", f"{copy}{suffix}")
        with Memory(copy, config=config, clock=_Clock(end)) as mem:
            mem.flush(None)  # with decay on: the sweep, on the day of the questions
            archived = sum(len(mem.list(user_id=c.sample_id, filters={"state": "archived"}, limit=1000))
                           for c in conversations)
            derived = sum(v for k, v in mem.stats()["by_kind"].items() if k != "turn")
            result = evaluate(mem, conversations, ["engram"])
        rows = result["rows"]
        out[name] = {"derived": derived, "archived": archived,
                     "search": rows["engram"]["metrics"]["overall"],
                     "recall()": rows["engram recall()"]["metrics"]["overall"],
                     "recall() multi-hop": rows["engram recall()"]["metrics"].get("multi-hop")}
    return out


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run(int(sys.argv[1]), Path(sys.argv[2])), indent=1))
