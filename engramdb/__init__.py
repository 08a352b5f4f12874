"""Engram: a memory operating system for LLM agents.

    from engramdb import Memory
    mem = Memory()                 # embedded SQLite in the user's data dir
"""

from .aio import AsyncMemory
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
from .memory import Memory
from .types import AddResult, Hit, Record, Scope, Version

__version__ = "0.1.0"

__all__ = [
    "AddResult", "AsyncMemory", "Config", "ConfigError", "EngramError", "Hit", "InvalidInputError", "Memory",
    "MissingDependencyError", "NotFoundError", "ProviderError", "Record", "Scope", "StorageError", "UsageError",
    "Version",
]
