"""The one error tree of Engram.

    EngramError
    ├── UsageError            the caller's mistake: fix the call
    │   ├── InvalidInputError malformed messages, wrong types, empty or huge text
    │   ├── NotFoundError     an unknown id
    │   ├── ConfigError       a broken configuration or store URL
    │   ├── AuthenticationError  a server request without a valid API key
    │   └── PermissionDeniedError  a valid key that may not do this (a write with a read-only key)
    ├── ProviderError         an embedder or LLM failed (dead server, bad reply)
    │   └── MissingDependencyError  an optional extra is not installed
    └── StorageError          the store failed (disk full, corrupt file, lock timeout)
"""

from __future__ import annotations


class EngramError(Exception):
    """Base class of every error Engram raises on purpose."""


class UsageError(EngramError):
    """The call was wrong; nothing was written."""


class InvalidInputError(UsageError, ValueError):
    """Malformed messages, wrong types, empty or oversized text."""


class NotFoundError(UsageError, KeyError):
    """No memory with that id is visible in this scope."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not
        return str(self.args[0]) if self.args else "not found"


class ConfigError(UsageError):
    """A broken configuration value, TOML file or store URL."""


class AuthenticationError(UsageError):
    """The server got no API key, an unknown one, or a revoked one."""


class PermissionDeniedError(UsageError):
    """The API key is valid but may not do this (a write with a read-only key)."""


class ProviderError(EngramError):
    """An embedding model or LLM failed or answered nonsense."""


class MissingDependencyError(ProviderError, ImportError):
    """An optional dependency is missing; the message names the pip line."""


class StorageError(EngramError):
    """The store could not complete the operation; nothing partial was kept."""
