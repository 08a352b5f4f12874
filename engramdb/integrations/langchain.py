"""A LangChain chat message history on Engram.

    from engramdb import Memory
    from engramdb.integrations.langchain import EngramChatMessageHistory

    history = EngramChatMessageHistory(Memory("sqlite:///./chat.db"), user_id="alice", session_id="s1")
    history.add_user_message("I moved to Berlin last May")
    history.messages          # [HumanMessage('I moved to Berlin last May')]

Each message is one Engram turn of the user's session: durable, searchable across every
session of the user (`memory.search(...)`), distilled into facts in the background, and
`clear()` erases the session (its text leaves the store, the indexes and the history).
Use it wherever LangChain takes a `BaseChatMessageHistory` (e.g. `RunnableWithMessageHistory`).
Needs `pip install 'engramdb[langchain]'`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import every_record, require

_history = require("langchain_core.chat_history", "langchain")
_messages = require("langchain_core.messages", "langchain")

META = "langchain"  # metadata key: the message's type and fields other than its text
ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class EngramChatMessageHistory(_history.BaseChatMessageHistory):
    """The messages of one session of one user, kept in Engram."""

    def __init__(self, memory: Any, *, user_id: str, session_id: str, agent_id: str | None = None) -> None:
        self.memory = memory
        self.user_id = user_id
        self.session_id = session_id
        self.agent_id = agent_id

    @property
    def messages(self) -> list[Any]:  # type: ignore[override]
        records = every_record(self.memory, user_id=self.user_id, session_id=self.session_id,
                               filters={"kind": "turn"})
        return [_message(r) for r in records]

    def add_messages(self, messages: Sequence[Any]) -> None:
        for turn, metadata in [_turn(m) for m in messages]:  # all converted (and checked) before one is stored
            self.memory.add(turn, user_id=self.user_id, session_id=self.session_id, agent_id=self.agent_id,
                            metadata=metadata)

    def clear(self) -> None:
        """Erase the session: its turns and what was derived from them."""
        self.memory.forget(user_id=self.user_id, session_id=self.session_id)


def _turn(message: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    data = _messages.message_to_dict(message)
    fields = dict(data["data"])
    content = fields.pop("content", "")
    text = content if isinstance(content, str) else _text_parts(content)
    extra: dict[str, Any] = {"type": data["type"], "fields": {k: v for k, v in fields.items() if v not in (None, {}, [])}}
    if not isinstance(content, str):
        extra["content"] = content  # a list of parts: kept whole to give it back as it was
    if not text.strip():
        extra["empty"] = True
        text = f"[{data['type']} message without text]"
    turn: dict[str, Any] = {"role": ROLES.get(data["type"], "event"), "content": text}
    return turn, {META: extra}


def _text_parts(content: list[Any]) -> str:
    return "\n".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content
                     if isinstance(p, str) or isinstance(p, dict))


def _message(record: Any) -> Any:
    extra = record.metadata.get(META)
    if extra is None:  # a turn added through Engram itself
        kind = {v: k for k, v in ROLES.items()}.get(record.role or "user", "human")
        return _messages.messages_from_dict([{"type": kind, "data": {"content": record.text}}])[0]
    content = extra.get("content", "" if extra.get("empty") else record.text)
    data = {**extra.get("fields", {}), "content": content}
    return _messages.messages_from_dict([{"type": extra["type"], "data": data}])[0]
