"""pydantic-ai long-term memory on Engram: a toolset with `remember` and `recall`.

    from pydantic_ai import Agent
    from engramdb import Memory
    from engramdb.integrations.pydantic_ai import memory_toolset

    agent = Agent("openai:gpt-5", toolsets=[memory_toolset(Memory("sqlite:///./agent.db"), user_id="alice")])

`remember(text)` stores a turn said by the agent in the user's memory (durable,
searchable, distilled into facts in the background); `recall(query)` answers with
Engram's dated context block. pydantic-ai keeps a run's messages in the run
(`message_history=`) and leaves long-term memory to tools; these are those tools.
Needs `pip install 'engramdb[pydantic-ai]'`.
"""

from __future__ import annotations

from typing import Any

from . import RECALL_DOC, REMEMBER_DOC, recall, remember, require

_toolsets = require("pydantic_ai.toolsets", "pydantic-ai")


def memory_toolset(memory: Any, *, user_id: str, session_id: str | None = None, budget_tokens: int = 600) -> Any:
    """A pydantic-ai `FunctionToolset` with `remember(text)` and `recall(query)` for one user."""

    def remember_tool(text: str) -> str:
        return remember(memory, text, user_id=user_id, session_id=session_id)

    def recall_tool(query: str) -> str:
        return recall(memory, query, user_id=user_id, budget_tokens=budget_tokens)

    toolset = _toolsets.FunctionToolset(id="engram-memory")
    toolset.add_function(remember_tool, takes_ctx=False, name="remember", description=REMEMBER_DOC)
    toolset.add_function(recall_tool, takes_ctx=False, name="recall", description=RECALL_DOC)
    return toolset
