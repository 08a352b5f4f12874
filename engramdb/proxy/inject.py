"""What the proxy asks of a user's memory: the system message before a request, and the
exchange stored after its answer. Synchronous (a `Memory`, or a key's `ScopedMemory`);
the app runs both in worker threads, the store after the answer has gone out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import InvalidInputError
from ..server.access import ScopedMemory
from . import layout

# The profile: (memory, user_id, budget_tokens) -> an engramdb.types.Profile, or None.
ProfileOf = Callable[[Any, str, int], Any]
STABLE_LIMIT = 200  # long-lived memories listed at most (oldest first); the budget usually stops sooner
QUERY_CHARS = 2000  # the query is the latest user message's last this many characters


def memory_profile(memory: Any, user_id: str, budget_tokens: int) -> Any:
    """`Memory.profile()` of the user (a key's `ScopedMemory`: of its Memory; the user was
    checked against the key already), or None when the config turns the profile off."""
    target = memory.memory if isinstance(memory, ScopedMemory) else memory
    if not target.config.profile:
        return None
    return target.profile(user_id, budget_tokens=min(budget_tokens, target.config.profile_budget_tokens))


class Injector:
    """`profile`: how to read the user's profile (default `Memory.profile()`; None: no
    profile section). `split`: the query's memories in a message of their own."""

    def __init__(self, *, profile: ProfileOf | None = memory_profile, split: bool = False) -> None:
        self.profile = profile
        self.split = split  # the query's memories in a message of their own, before the latest user message

    def lookup(self, memory: Any, user_id: str, messages: Sequence[Mapping[str, Any]], budget_tokens: int,
               session_id: str | None = None) -> layout.Injection:
        """The system message for a request whose messages are `messages`."""
        if budget_tokens < layout.MIN_BUDGET_TOKENS:
            raise InvalidInputError(f"the memory budget must be at least {layout.MIN_BUDGET_TOKENS} tokens, "
                                    f"got {budget_tokens}")
        latest = layout.latest_user_turn(messages)
        query = " ".join(layout.message_text(latest).split())[-QUERY_CHARS:] if latest is not None else ""
        stable_budget = layout.stable_budget(budget_tokens)
        sections: list[layout.Section] = []
        shown: set[str] = set()
        if self.profile is not None and stable_budget >= 1:
            profiled = layout.profile_section(self.profile(memory, user_id, stable_budget))
            if profiled is not None:
                sections.append(profiled)
                shown.update(profiled.ids)
                stable_budget -= layout.budget_used(profiled)
        listed = memory.list(user_id=user_id, filters={"kind": {"in": list(layout.STABLE_KINDS)}},
                             limit=min(STABLE_LIMIT, memory.config.max_limit))
        stable = layout.section(layout.STABLE_TITLE, [layout.hit_of(r) for r in listed if r.id not in shown],
                                stable_budget)
        if stable is not None:
            sections.append(stable)
            shown.update(stable.ids)
        left = layout.query_budget(budget_tokens, sections)
        if query and left >= layout.MIN_BUDGET_TOKENS:
            recalled = memory.recall(query, user_id=user_id, budget_tokens=left)
            # Not twice: what the sections above show, and what the conversation already says.
            hits = layout.not_in_conversation([h for h in recalled.hits if h.id not in shown], messages)
            found = (layout.rendered(layout.QUERY_TITLE, recalled.text, hits) if len(hits) == len(recalled.hits)
                     else layout.section(layout.QUERY_TITLE, hits, left, query))  # assembled again without them
            if found is not None:
                sections.append(found)
        return layout.system_message(sections, split=self.split)

    def remember(self, memory: Any, user_id: str, user_turn: Mapping[str, Any] | None, answer: str,
                 model: str | None, session_id: str | None = None) -> int:
        """Store the latest user turn and the answer (agent: the model's name); returns
        how many turns were stored. Distillation runs in the background, as for any add."""
        turns = []
        if user_turn is not None:
            turn = {"role": "user", "content": layout.message_text(user_turn)}
            name = user_turn.get("name")
            if isinstance(name, str) and name:
                turn["name"] = name
            turns.append(turn)
        turns.append({"role": "assistant", "content": answer})
        result = memory.add(turns, user_id=user_id, session_id=session_id, agent_id=model or None,
                            skip_empty=True)
        return len(result.records)
