"""Engram: a memory operating system for LLM agents.

    from engramdb import Memory
    mem = Memory()                 # embedded SQLite in the user's data dir

`Memory` and `AsyncMemory` (and NumPy behind them) load on first use, so that
`import engramdb` and `engram --help` stay fast.
"""

from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import (
    ConfigError,
    EngramError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    ProviderError,
    StorageError,
    UsageError,
)
from .types import AddResult, Hit, Recall, Record, Scope, Version

if TYPE_CHECKING:
    from .aio import AsyncMemory
    from .living.notes import Note, Related
    from .memory import Memory

__version__ = "0.1.0"

__all__ = [
    "AddResult", "AsyncMemory", "Config", "ConfigError", "EngramError", "Hit", "InvalidInputError", "Memory",
    "MissingDependencyError", "NotFoundError", "ProviderError", "Recall", "Record", "Scope", "StorageError", "UsageError",
    "Version", "Note", "Related",
]

_LAZY = {"Memory": "memory", "AsyncMemory": "aio", "Note": "living.notes", "Related": "living.notes"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'engramdb' has no attribute {name!r}")
