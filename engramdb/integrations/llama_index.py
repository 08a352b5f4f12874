"""LlamaIndex long-term memory on Engram: `EngramMemoryBlock`, a memory block for
LlamaIndex's `Memory`.

    from llama_index.core.memory import Memory as LlamaMemory
    from engramdb import Memory
    from engramdb.integrations.llama_index import EngramMemoryBlock

    block = EngramMemoryBlock(memory=Memory("sqlite:///./agent.db"), user_id="alice")
    memory = LlamaMemory.from_defaults(session_id="s1", memory_blocks=[block])
    agent.run("...", memory=memory)

Messages that leave LlamaIndex's short-term memory (its chat store, in-process SQLite by
default) are put into Engram as turns of the user's session; each time the agent reads
its memory the block answers with Engram's dated context block for the latest user
message, drawn from every session of the user. Needs `pip install 'engramdb[llama-index]'`.
"""

from __future__ import annotations

from typing import Any

from . import require

_memory = require("llama_index.core.memory", "llama-index")
_llms = require("llama_index.core.base.llms.types", "llama-index")

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system", "tool": "tool"}


class EngramMemoryBlock(_memory.BaseMemoryBlock[str]):
    """Long-term memory for one user: `aput` stores turns, `aget` gives the context block."""

    name: str = "engram"
    description: str | None = "Long-term memory kept by Engram"
    memory: Any
    user_id: str
    session_id: str | None = None
    budget_tokens: int = 600
    context_messages: int = 2  # how many of the latest user messages make the query

    async def _aget(self, messages: list[Any] | None = None, **block_kwargs: Any) -> str:
        texts = [m.content for m in messages or [] if m.role == _llms.MessageRole.USER and m.content]
        query = " ".join(texts[-self.context_messages:]).strip()
        if not query:
            return ""
        return await _to_thread(self.memory.context, query, user_id=self.user_id, budget_tokens=self.budget_tokens)

    async def _aput(self, messages: list[Any]) -> None:
        turns = []
        for message in messages:
            if not message.content or not message.content.strip():
                continue  # a tool call without text: nothing to remember
            turns.append((message.additional_kwargs.get("session_id", self.session_id),
                          {"role": ROLES.get(str(message.role.value), "event"), "content": message.content}))

        def add() -> None:
            for session_id, turn in turns:
                self.memory.add(turn, user_id=self.user_id, session_id=session_id)

        await _to_thread(add)


async def _to_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(function, *args, **kwargs)
