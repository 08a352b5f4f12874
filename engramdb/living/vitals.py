"""A memory's vitals and its explicit lifecycle state: pure decisions, no I/O.

Vitals (MemoryBank, MemRL): `strength` (1 at first, +1 each time the memory is recalled,
i.e. returned by search / recall / context, or confirmed, i.e. the same fact said
again), `last_recall` (when that last happened; never: the time Engram stored it),
`recalls`, `confirmations`, and `utility` in [-1, 1] from feedback (`Memory.feedback`:
used +, unused -, an exponential moving average). Retention is MemoryBank's forgetting
curve, R = exp(-Δt / (tau · strength)), Δt the time since the last recall by Engram's
clock. A derived memory whose retention falls below the threshold is archived: out of
default search, never deleted; recalled by an exact match or confirmed, it is active
again. Turns are never archived: they are the evidence every derived memory rests on,
and what the user said is theirs to erase, not Engram's to fade.

States: every memory is in exactly one, and every change of state is a history entry
(`Version.event`) with its reason."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

ACTIVE, ARCHIVED, SUPERSEDED, RETRACTED, MERGED, ERASED = (
    "active", "archived", "superseded", "retracted", "merged", "erased")
STATES = (ACTIVE, ARCHIVED, SUPERSEDED, RETRACTED, MERGED, ERASED)

# The state each history event leaves a memory in. An "outdate" (its source turn was
# updated) is a supersession by the source's new text; "merge" is for memories folded
# into another (thoughts, topics: later kinds).
EVENT_STATES = {
    "add": ACTIVE, "update": ACTIVE, "reinstate": ACTIVE, "revive": ACTIVE,
    "supersede": SUPERSEDED, "outdate": SUPERSEDED, "retract": RETRACTED,
    "archive": ARCHIVED, "merge": MERGED, "delete": ERASED,
}
RETIRED_STATES = {"supersede": SUPERSEDED, "outdate": SUPERSEDED, "retract": RETRACTED}  # a retirement's event

ARCHIVE, REVIVE = "archive", "revive"  # the history events of decay
RECALLED_BY_ID = "recalled by id"
RECALLED_EXACTLY = "recalled by an exact match"
CONFIRMED_BY = "confirmed again by "  # + the confirming turns' ids

REINFORCE = 1.0  # strength added by one recall or confirmation (MemoryBank: +1)
UTILITY_RATE = 0.2  # how far one feedback moves utility towards +1 (used) or -1 (unused)
DAY_S = 86_400.0


@dataclass(frozen=True)
class Vitals:
    """What use and time have done to one memory."""

    memory_id: str
    strength: float = 1.0
    last_recall: str | None = None  # None: never recalled since Engram stored it
    recalls: int = 0
    confirmations: int = 0
    utility: float = 0.0
    used: int = 0
    unused: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


VITAL_FIELDS = ("strength", "last_recall", "recalls", "confirmations", "utility", "used", "unused")


def state_after(events: Iterable[str], start: str = ACTIVE) -> str:
    """The state a history (its events, oldest first) leaves a memory in."""
    state = start
    for event in events:
        state = EVENT_STATES.get(event, state)
    return state


def retention(strength: float, elapsed_s: float, tau_s: float) -> float:
    """MemoryBank's forgetting curve: exp(-Δt / (tau · strength)), 1 at Δt = 0."""
    if strength <= 0 or tau_s <= 0:
        raise ValueError("strength and tau must be positive")
    return math.exp(-max(0.0, elapsed_s) / (tau_s * strength))


def utility_after(utility: float, used: bool) -> float:
    """One feedback: utility moves a fifth of the way to +1 (used) or -1 (unused)."""
    target = 1.0 if used else -1.0
    return utility + UTILITY_RATE * (target - utility)


def untouched_since(now: datetime, tau_s: float, threshold: float) -> datetime:
    """No memory touched after this can have fallen below `threshold` (strength is at
    least 1): what the sweep reads is bounded by it."""
    return now - timedelta(seconds=-math.log(threshold) * tau_s)


@dataclass(frozen=True)
class Candidate:
    """A memory the decay sweep looks at."""

    id: str
    kind: str
    state: str
    recorded_at: str
    strength: float
    last_recall: str | None


def to_archive(candidates: Iterable[Candidate], now: datetime, *, tau_s: float,
               threshold: float) -> list[tuple[str, str]]:
    """(id, reason) of the active derived memories whose retention is below `threshold`."""
    from ..clock import parse_ts

    out = []
    for memory in candidates:
        if memory.kind == "turn" or memory.state != ACTIVE:
            continue
        touched = parse_ts(memory.last_recall or memory.recorded_at)
        elapsed = (now - touched).total_seconds()
        kept = retention(memory.strength, elapsed, tau_s)
        if kept < threshold:
            out.append((memory.id, archive_reason(kept, threshold, memory.strength, elapsed)))
    return out


def archive_reason(kept: float, threshold: float, strength: float, elapsed_s: float) -> str:
    return (f"retention {kept:.3f} below {threshold:g} (strength {strength:g}, "
            f"not recalled for {elapsed_s / DAY_S:.0f} days)")


def confirmed_reason(turn_ids: Sequence[str]) -> str:
    return CONFIRMED_BY + ", ".join(dict.fromkeys(turn_ids))


def reranked(scored: Sequence[tuple[Any, float]], vitals: Mapping[Any, Vitals], *, now: datetime,
             recorded_at: Mapping[Any, str], tau_s: float, utility_weight: float | None,
             retention_weight: float | None) -> list[tuple[Any, float]]:
    """Scores (best first) adjusted by use: × (1 + w_u · utility) and
    × (1 - w_r · (1 - retention)); a memory without vitals has utility 0 and its
    retention since it was stored."""
    from ..clock import parse_ts

    out = []
    for key, score in scored:
        v = vitals.get(key)
        factor = 1.0
        if utility_weight:
            factor *= 1.0 + utility_weight * (v.utility if v else 0.0)
        if retention_weight:
            touched = (v.last_recall if v else None) or recorded_at.get(key)
            elapsed = (now - parse_ts(touched)).total_seconds() if touched else 0.0
            factor *= 1.0 - retention_weight * (1.0 - retention(v.strength if v else 1.0, elapsed, tau_s))
        out.append((key, score * factor))
    return sorted(out, key=lambda item: -item[1])
