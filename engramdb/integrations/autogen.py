"""AutoGen long-term memory on Engram: `EngramAutogenMemory`, an `autogen_core.memory.Memory`.

    from autogen_agentchat.agents import AssistantAgent
    from engramdb import Memory
    from engramdb.integrations.autogen import EngramAutogenMemory

    memory = EngramAutogenMemory(Memory("sqlite:///./agent.db"), user_id="alice")
    agent = AssistantAgent("assistant", model_client=client, memory=[memory])

`add()` stores a `MemoryContent` as a turn of the user's memory (text, markdown or
JSON); `query()` searches it (hybrid keyword + meaning, with provenance in each result's
metadata); `update_context()` puts Engram's dated context block for the latest user
message into the model context as one system message; `clear()` erases the user's
memory (the text leaves the store, its indexes and its history).
Needs `pip install 'engramdb[autogen]'`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from . import require
from ..errors import InvalidInputError

_memory = require("autogen_core.memory", "autogen")
_models = require("autogen_core.models", "autogen")

MemoryContent, MemoryMimeType = _memory.MemoryContent, _memory.MemoryMimeType
MemoryQueryResult, UpdateContextResult = _memory.MemoryQueryResult, _memory.UpdateContextResult
META = "autogen"  # metadata key: the content's MIME type and the caller's metadata


class EngramAutogenMemory(_memory.Memory):
    """The long-term memory of one user (optionally one session) in Engram."""

    component_type = "memory"

    def __init__(self, memory: Any, *, user_id: str, session_id: str | None = None, limit: int = 10,
                 budget_tokens: int = 600, name: str = "engram") -> None:
        self.memory = memory
        self.user_id = user_id
        self.session_id = session_id
        self.limit = limit
        self.budget_tokens = budget_tokens
        self.name = name

    async def update_context(self, model_context: Any) -> Any:
        messages = await model_context.get_messages()
        texts = [m.content for m in messages if isinstance(m, _models.UserMessage) and isinstance(m.content, str)]
        if not texts:
            return UpdateContextResult(memories=MemoryQueryResult(results=[]))
        recalled = await asyncio.to_thread(self.memory.recall, texts[-1], user_id=self.user_id,
                                           budget_tokens=self.budget_tokens)
        if recalled.hits:
            await model_context.add_message(_models.SystemMessage(content=recalled.text))
        return UpdateContextResult(memories=MemoryQueryResult(results=[_content(h) for h in recalled.hits]))

    async def query(self, query: Any = "", cancellation_token: Any = None, **kwargs: Any) -> Any:
        text = query.content if isinstance(query, MemoryContent) else query
        if not isinstance(text, str):
            raise InvalidInputError(f"an Engram memory query is text, got {type(text).__name__}")
        hits = await asyncio.to_thread(self.memory.search, text, user_id=self.user_id,
                                       limit=kwargs.get("limit", self.limit))
        return MemoryQueryResult(results=[_content(h) for h in hits])

    async def add(self, content: Any, cancellation_token: Any = None) -> None:
        mime = content.mime_type.value if isinstance(content.mime_type, MemoryMimeType) else str(content.mime_type)
        if isinstance(content.content, str):
            text = content.content
        elif isinstance(content.content, dict):
            text = json.dumps(content.content, ensure_ascii=False)
        else:
            raise InvalidInputError(f"Engram keeps text, markdown and JSON memories, not {mime}")
        metadata = {META: {"mime_type": mime, "metadata": content.metadata or {}}}
        await asyncio.to_thread(self.memory.add, {"role": "user", "content": text}, user_id=self.user_id,
                                session_id=self.session_id, metadata=metadata)

    async def clear(self) -> None:
        """Erase this memory's scope: the user's (or the session's) every memory."""
        await asyncio.to_thread(self.memory.forget, user_id=self.user_id, session_id=self.session_id)

    async def close(self) -> None:
        return None


def _content(hit: Any) -> Any:
    extra = hit.metadata.get(META, {})
    mime = extra.get("mime_type", MemoryMimeType.TEXT.value)
    content: Any = json.loads(hit.text) if mime == MemoryMimeType.JSON.value else hit.text
    metadata = {**extra.get("metadata", {}), "id": hit.id, "kind": hit.kind, "score": hit.score,
                "sources": hit.sources, "session_id": hit.session_id, "created_at": hit.created_at}
    return MemoryContent(content=content, mime_type=mime, metadata=metadata)
