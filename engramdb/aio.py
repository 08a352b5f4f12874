"""`AsyncMemory`: the same methods as `Memory`, awaited. The logic is written once, in
`Memory`; each call runs in a worker thread so the event loop never blocks on SQLite
or the embedding model."""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

from .memory import Memory

METHODS = (
    "add", "search", "context", "recall", "profile", "jobs", "compact", "get", "list", "update", "delete", "history", "forget", "reset",
    "export", "import_", "stats", "flush", "close",
    "think", "feedback", "vitals", "note", "revert_note", "related",
)


class AsyncMemory:
    def __init__(self, store: str | os.PathLike | None = None, **kwargs: Any) -> None:
        self.sync = kwargs.pop("memory", None) or Memory(store, **kwargs)

    async def __aenter__(self) -> "AsyncMemory":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def read_only(self) -> bool:
        """Opened with read_only=True: reads only, every write refused."""
        return self.sync.read_only

    @property
    def changes(self) -> Any:
        """`Memory.changes`: listeners are called in the worker thread that made the change."""
        return self.sync.changes

    @property
    def activation_states(self) -> Any:
        """`Memory.activation_states` (file reads: call it from a worker thread)."""
        return self.sync.activation_states

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"


def _wrap(name: str):
    target = getattr(Memory, name)

    @functools.wraps(target)
    async def method(self: AsyncMemory, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.sync, name), *args, **kwargs)

    return method


for _name in METHODS:
    setattr(AsyncMemory, _name, _wrap(_name))
