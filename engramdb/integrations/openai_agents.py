"""The OpenAI Agents SDK on Engram: a `Session` (conversation history) and memory tools.

    from agents import Agent, Runner
    from engramdb import Memory
    from engramdb.integrations.openai_agents import EngramSession, memory_tools

    mem = Memory("sqlite:///./agent.db")
    agent = Agent(name="assistant", tools=memory_tools(mem, user_id="alice"))
    await Runner.run(agent, "hi", session=EngramSession("s1", mem, user_id="alice"))

`EngramSession` keeps each item of the conversation as one Engram turn of the user's
session (messages by their role, tool calls and outputs as `tool`/`event` turns), so the
history is durable, searchable across sessions and distilled into facts; `pop_item()`
and `clear_session()` erase (the text leaves the store, its indexes and its history).
`memory_tools()` gives an agent `remember` and `recall` (Engram's dated context block).
Needs `pip install 'engramdb[openai-agents]'`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import RECALL_DOC, REMEMBER_DOC, every_record, recall, remember, require

_agents = require("agents", "openai-agents")

META = "openai_agents"  # metadata key: the item less its text, and where the text goes back
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


class EngramSession(_agents.memory.SessionABC):
    """An Agents SDK session whose items live in Engram (user `user_id`, session `session_id`)."""

    session_settings = None

    def __init__(self, session_id: str, memory: Any, *, user_id: str, agent_id: str | None = None) -> None:
        self.session_id = session_id
        self.memory = memory
        self.user_id = user_id
        self.agent_id = agent_id

    def _records(self) -> list[Any]:
        return list(every_record(self.memory, user_id=self.user_id, session_id=self.session_id,
                                 filters={"kind": "turn"}))

    async def get_items(self, limit: int | None = None) -> list[Any]:
        records = await asyncio.to_thread(self._records)
        if limit is not None:
            records = records[-limit:] if limit > 0 else []
        return [_item(r) for r in records]

    async def add_items(self, items: list[Any]) -> None:
        turns = [_turn(item) for item in items]  # all converted (and checked) before one is stored

        def add() -> None:
            for turn, metadata in turns:
                self.memory.add(turn, user_id=self.user_id, session_id=self.session_id, agent_id=self.agent_id,
                                metadata=metadata)

        await asyncio.to_thread(add)

    async def pop_item(self) -> Any:
        def pop() -> Any:
            records = self._records()
            if not records:
                return None
            self.memory.delete(records[-1].id, user_id=self.user_id)
            return _item(records[-1])

        return await asyncio.to_thread(pop)

    async def clear_session(self) -> None:
        await asyncio.to_thread(self.memory.forget, user_id=self.user_id, session_id=self.session_id)


def memory_tools(memory: Any, *, user_id: str, session_id: str | None = None, budget_tokens: int = 600) -> list[Any]:
    """`remember(text)` and `recall(query)` as Agents SDK function tools for one user."""

    def remember_tool(text: str) -> str:
        return remember(memory, text, user_id=user_id, session_id=session_id)

    def recall_tool(query: str) -> str:
        return recall(memory, query, user_id=user_id, budget_tokens=budget_tokens)

    return [
        _agents.function_tool(remember_tool, name_override="remember", description_override=REMEMBER_DOC),
        _agents.function_tool(recall_tool, name_override="recall", description_override=RECALL_DOC),
    ]


def _turn(item: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An item as an Engram turn: its text (message content, call arguments or output) as
    the turn's text, the rest of the item in metadata, with where the text goes back."""
    if not isinstance(item, dict):
        item = item.model_dump(exclude_unset=True) if hasattr(item, "model_dump") else dict(item)
    rest = dict(item)
    field, parts = None, None
    for name in ("content", "arguments", "output"):
        if isinstance(rest.get(name), str):
            field = name
            text = rest.pop(name)
            break
        if name in ("content", "output") and isinstance(rest.get(name), list):
            field = name
            content = [dict(p) if isinstance(p, dict) else p for p in rest[name]]
            slots = [i for i, p in enumerate(content) if isinstance(p, dict) and isinstance(p.get("text"), str)]
            texts = [content[i].pop("text") for i in slots]
            rest[name] = content
            parts = [[i, len(t)] for i, t in zip(slots, texts)]  # which part, how long its text
            text = "\n".join(texts)
            break
    else:
        text = ""
    extra: dict[str, Any] = {"item": rest, "field": field, "parts": parts}
    if not text.strip():
        extra["empty"] = text
        text = f"[{item.get('type') or item.get('role') or 'item'} without text]"
    if "role" in item:
        role = ROLES.get(item["role"], "event")
    else:
        role = "tool" if str(item.get("type", "")).endswith("_output") else "event"
    return {"role": role, "content": text}, {META: extra}


def _item(record: Any) -> Any:
    extra = record.metadata.get(META)
    if extra is None:  # a turn added through Engram itself
        role = record.role if record.role in ("user", "assistant", "system") else "user"
        return {"role": role, "content": record.text}
    item = dict(extra["item"])
    text = extra.get("empty", record.text)
    field, parts = extra.get("field"), extra.get("parts")
    if field is None:
        return item
    if parts is None:
        item[field] = text
        return item
    content = [dict(p) if isinstance(p, dict) else p for p in item[field]]
    offset, exact = 0, sum(length for _, length in parts) + max(0, len(parts) - 1) == len(text)
    for n, (index, length) in enumerate(parts):
        if exact:
            content[index]["text"] = text[offset:offset + length]
            offset += length + 1
        else:  # the text was changed in Engram: all of it in the first part
            content[index]["text"] = text if n == 0 else ""
    item[field] = content
    return item
