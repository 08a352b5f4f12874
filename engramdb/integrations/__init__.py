"""Engram inside the agent frameworks people already use: each module implements one
framework's own memory interface over a `Memory`, and is an optional extra.

    pip install 'engramdb[langgraph]'        # engramdb.integrations.langgraph.EngramStore
    pip install 'engramdb[langchain]'        # engramdb.integrations.langchain.EngramChatMessageHistory
    pip install 'engramdb[openai-agents]'    # engramdb.integrations.openai_agents.EngramSession, memory_tools
    pip install 'engramdb[llama-index]'      # engramdb.integrations.llama_index.EngramMemoryBlock
    pip install 'engramdb[pydantic-ai]'      # engramdb.integrations.pydantic_ai.memory_toolset
    pip install 'engramdb[autogen]'          # engramdb.integrations.autogen.EngramAutogenMemory

Nothing here is imported by `import engramdb`; a module whose framework is missing
raises MissingDependencyError with the pip line (docs/integrations.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import import_module
from typing import Any

from ..errors import MissingDependencyError

PAGE = 1_000  # Config.max_limit's default: list() pages of this size


def require(module: str, extra: str) -> Any:
    """Import a framework module, or fail with the pip line that installs it."""
    try:
        return import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"this Engram integration needs {module.split('.')[0]} ({exc.name} is missing): "
            f"pip install 'engramdb[{extra}]'"
        ) from exc


def every_record(memory: Any, *, user_id: str, session_id: str | None = None,
                 filters: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """Every current record of a scope that matches `filters`, in time order, page by page."""
    page = min(PAGE, memory.config.max_limit)
    offset = 0
    while True:
        records = memory.list(user_id=user_id, session_id=session_id, filters=filters, limit=page, offset=offset)
        yield from records
        if len(records) < page:
            return
        offset += page


# -- the two memory tools every framework's agent gets (openai_agents, pydantic_ai) --------

REMEMBER_DOC = "Store a fact about the user in long-term memory, to recall in later conversations."
RECALL_DOC = "Recall what long-term memory holds about a question (dated lines, best match first)."


def remember(memory: Any, text: str, *, user_id: str, session_id: str | None = None,
             agent_id: str | None = None) -> str:
    """The `remember` tool: store `text` as a turn said by the agent; returns its id."""
    added = memory.add({"role": "assistant", "content": text}, user_id=user_id, session_id=session_id,
                       agent_id=agent_id)
    return f"remembered ({added.ids[0]})"


def recall(memory: Any, query: str, *, user_id: str, budget_tokens: int = 600) -> str:
    """The `recall` tool: the prompt block of what matters for `query` (engramdb.block)."""
    return memory.context(query, user_id=user_id, budget_tokens=budget_tokens)
