"""`engram bench guard`: the injection detector (engramdb/guard.py) on its red-team suite, its
benign look-alikes and LoCoMo, and what it costs per turn.

LoCoMo's turns are ordinary conversation: every turn flagged there is a false flag. Its
GPT-written observations and session summaries (the kind of text a distiller writes,
which `candidate_is_tainted` reads) are checked too, and every window of three
consecutive turns of a session for a false "split". Cost is the time of `flag()` on each
LoCoMo turn, the least of `rounds` tries (the machine is shared: the least is the cost
of the work, the rest is waiting for a core)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..guard import flag, flag_window
from .redteam import BENIGN, INJECTIONS, SPLIT

WINDOW = 3


def run(locomo: Path | None, *, rounds: int = 5) -> dict[str, Any]:
    result: dict[str, Any] = {"redteam": _redteam(), "benign": _benign(), "load_average": _load()}
    if locomo is not None and locomo.exists():
        result["locomo"] = _locomo(locomo, rounds)
    else:
        result["locomo"] = None
    return result


def _load() -> list[float] | None:
    """The machine's 1/5/15-minute load average when the run started: costs are read beside it."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _redteam() -> dict[str, Any]:
    missed, wrong, reasons = [], [], Counter()
    for name, text, role, speaker, reason in INJECTIONS:
        found = flag(text, role=role, name=speaker)
        if found is None:
            missed.append(name)
            continue
        reasons[found.reason] += 1
        if found.reason != reason:
            wrong.append(f"{name}: {found.reason} (expected {reason})")
    split_missed = []
    for name, texts in SPLIT:
        found = flag_window(texts)
        if found is None or found.reason != "split":
            split_missed.append(name)
    turns = len(INJECTIONS)
    return {
        "turns": turns, "flagged": turns - len(missed), "share": round((turns - len(missed)) / turns, 4),
        "missed": missed, "other_reason": wrong, "by_reason": dict(sorted(reasons.items())),
        "split_windows": len(SPLIT), "split_flagged": len(SPLIT) - len(split_missed), "split_missed": split_missed,
    }


def _benign() -> dict[str, Any]:
    false = [(text, found.reason) for text in BENIGN if (found := flag(text, role="user")) is not None]
    return {"turns": len(BENIGN), "false_flags": len(false), "flagged": false}


def _locomo(path: Path, rounds: int) -> dict[str, Any]:
    from .locomo import load

    conversations = load(path)
    turns = [(conv.sample_id, message) for conv in conversations for _, messages in conv.sessions
             for message in messages]
    flagged, costs = [], []
    for sample, message in turns:
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter_ns()
            found = flag(message["content"], role=message["role"], name=message["name"])
            best = min(best, time.perf_counter_ns() - start)
        costs.append(best / 1000)
        if found is not None:
            flagged.append({"conversation": sample, "id": message["id"], "reason": found.reason,
                            "evidence": found.evidence, "text": message["content"]})
    windows = split = 0
    window_costs = []
    for conv in conversations:
        for _, messages in conv.sessions:
            texts = [message["content"] for message in messages]
            for start in range(max(0, len(texts) - WINDOW + 1)):
                windows += 1
                best = float("inf")
                for _ in range(rounds):
                    began = time.perf_counter_ns()
                    found = flag_window(texts[start:start + WINDOW], each=False)
                    best = min(best, time.perf_counter_ns() - began)
                window_costs.append(best / 1000)
                split += found is not None
    derived = _derived(path)
    derived_flagged = [text for text in derived if flag(text) is not None]
    chars = sorted(len(message["content"]) for _, message in turns)
    return {
        "path": str(path), "turns": len(turns), "flagged": len(flagged), "rate": round(len(flagged) / len(turns), 5),
        "flagged_turns": flagged, "turn_chars_p50": chars[len(chars) // 2],
        "cost_us": _percentiles(costs), "rounds": rounds,
        "windows": windows, "window_false_splits": split, "window_cost_us": _percentiles(window_costs),
        "derived_texts": len(derived), "derived_flagged": len(derived_flagged),
        "derived_flagged_texts": derived_flagged,
    }


def _derived(path: Path) -> list[str]:
    """LoCoMo's GPT-written observations, session summaries and event summaries."""
    texts: list[str] = []
    for sample in json.loads(path.read_text()):
        for per_speaker in sample.get("observation", {}).values():
            for facts in per_speaker.values():
                texts += [fact[0] if isinstance(fact, list) else fact for fact in facts]
        texts += [text for text in sample.get("session_summary", {}).values() if isinstance(text, str)]
        for per_speaker in sample.get("event_summary", {}).values():
            for events in per_speaker.values():
                if isinstance(events, list):
                    texts += events
    return [text for text in texts if isinstance(text, str) and text.strip()]


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 1),
            "mean": round(sum(ordered) / len(ordered), 1)}


def table(result: dict[str, Any], *, show: bool = False) -> list[str]:
    red, benign, loc = result["redteam"], result["benign"], result["locomo"]
    lines = [
        f"red team: {red['flagged']}/{red['turns']} injection turns flagged ({red['share']:.1%})"
        + (f"; missed: {', '.join(red['missed'])}" if red["missed"] else "")
        + f"; split across turns: {red['split_flagged']}/{red['split_windows']} windows flagged",
        "  by reason: " + ", ".join(f"{reason} {n}" for reason, n in red["by_reason"].items()),
        f"benign look-alikes: {benign['false_flags']}/{benign['turns']} falsely flagged"
        + "".join(f"\n  {reason}: {text}" for text, reason in benign["flagged"]),
    ]
    if loc is None:
        lines.append("LoCoMo: not found (set ENGRAM_LOCOMO or --locomo); no false-flag rate or cost measured")
        return lines
    cost, window = loc["cost_us"], loc["window_cost_us"]
    lines += [
        f"LoCoMo: {loc['flagged']}/{loc['turns']:,} turns falsely flagged ({loc['rate']:.2%}); "
        f"{loc['window_false_splits']}/{loc['windows']:,} windows of {WINDOW} turns falsely flagged as split; "
        f"{loc['derived_flagged']}/{loc['derived_texts']:,} observations and summaries flagged",
        f"cost per turn (flag(), median {loc['turn_chars_p50']} characters, least of {loc['rounds']} tries): "
        f"p50 {cost['p50']} µs, p95 {cost['p95']} µs, p99 {cost['p99']} µs, max {cost['max']} µs; "
        f"per window of {WINDOW} (flag_window, each=False): p50 {window['p50']} µs, p95 {window['p95']} µs"
        + (f"; load average {result['load_average'][0]}" if result.get("load_average") else ""),
    ]
    if show:
        lines += [f"  {t['conversation']} {t['id']} {t['reason']}: {t['evidence']!r} in {t['text']!r}"
                  for t in loc["flagged_turns"]]
    return lines
