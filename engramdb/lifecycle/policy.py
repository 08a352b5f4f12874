"""Pure decisions of the derivation rule. No I/O: the engine reads, these decide.

A derived memory (fact, preference, event, summary, …) is a function of its live
sources. It is linked to each source turn by a `Link`; a link `suffices` when that turn
alone was distilled into the memory's very text (the memory was said again, word for
word, by that turn). So when a source is erased or updated:

- a memory one of whose live sources suffices is kept as it is, its sources narrowed to
  the live ones;
- any other memory is erased (its text may quote what was erased) and its remaining
  sources are distilled again (`Rederive`): what they still say comes back, what only the
  erased text said does not;
- a memory retired (superseded, retracted) by something that no longer holds is true
  again, unless a newer current memory of the same slot says otherwise."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..extract.vocab import same_slot
from ..types import Scope

SESSION_WIDE_KINDS = frozenset({"summary"})  # re-derived from what is left of their session
# Erased with a source and never distilled again from what remains: a topic is rebuilt by
# its own background job from every live memory of its scope (living/topics.py); a
# thought is an agent's conclusion (living/thinking.py), gone with what it rested on.
REBUILT_KINDS = frozenset({"topic", "thought"})


@dataclass(frozen=True)
class Link:
    """`memory_id` was derived from `source_id` (a turn, or a memory)."""

    memory_id: str
    source_id: str
    suffices: bool = False


@dataclass(frozen=True)
class Derived:
    """A derived memory as the policy sees it."""

    id: str
    kind: str
    scope: Scope
    links: tuple[Link, ...]
    current: bool = True  # not superseded, retracted or outdated


@dataclass(frozen=True)
class Rederive:
    """Distil these live turns of a scope again; `session` asks for the live turns of the
    scope's session as well (a summary is made from a session, not from a few turns)."""

    scope: Scope
    turn_ids: tuple[str, ...]
    session: bool = False


@dataclass
class Cascade:
    keep: list[str] = field(default_factory=list)  # memories kept, sources narrowed to live links
    erase: list[str] = field(default_factory=list)
    rederive: list[Rederive] = field(default_factory=list)


def cascade(affected: Iterable[Derived], gone: set[str]) -> Cascade:
    """What happens to memories one of whose sources is in `gone` (erased, or updated)."""
    out = Cascade()
    wanted: dict[tuple[Scope, bool], dict[str, None]] = {}
    for memory in sorted(affected, key=lambda m: m.id):
        live = [link for link in memory.links if link.source_id not in gone]
        if any(link.suffices for link in live):
            out.keep.append(memory.id)
            continue
        out.erase.append(memory.id)
        session = memory.kind in SESSION_WIDE_KINDS and memory.scope.session_id is not None
        if (live or session) and memory.kind not in REBUILT_KINDS:
            wanted.setdefault((memory.scope, session), {}).update((link.source_id, None) for link in live)
    out.rederive = [Rederive(scope, tuple(turns), session) for (scope, session), turns in wanted.items()]
    return out


@dataclass(frozen=True)
class Retired:
    """A memory whose latest version retired it, with the ids its reason names."""

    id: str
    causes: frozenset[str]
    slot: str | None  # its slot key ("subject|attribute"), None for none
    stored: object | None  # the memory as reconcile.Stored (slot fields), for same_slot
    created_at: str


def to_reinstate(retired: Sequence[Retired], gone: set[str], holding: set[str],
                 current: Mapping[str, Sequence[tuple[str, object, str]]]) -> list[str]:
    """Which retired memories are true again: one of their causes is in `gone` (erased or
    updated now), none of their causes still holds, and no current memory of their slot
    that became true later says otherwise. `current`: slot key -> (id, stored,
    created_at) of that slot's current memories."""
    out = []
    for memory in sorted(retired, key=lambda r: r.id):
        if not memory.causes & gone or memory.causes & holding:
            continue
        if memory.slot is not None and any(
            other_id != memory.id and at >= memory.created_at and same_slot(other, memory.stored)
            for other_id, other, at in current.get(memory.slot, ())
        ):
            continue
        out.append(memory.id)
    return out
