"""Who is calling, and the `Memory` that serves them.

A `Principal` is what a request's key resolves to. The `TenantRegistry` opens one
`Memory(url, tenant=t)` per tenant on first use and keeps it: each tenant's data lives
in a store of its own, so nothing a handler does with one tenant's `Memory` can reach
another's. All tenants share one embedder instance (one model in memory)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from ..config import Config
from ..errors import ConfigError, PermissionDeniedError
from ..providers import Embedder, make_embedder
from .scopes import ANY_USER, UserScope

# The tenant of `--no-auth` and stdio MCP: None, the untenanted store the CLI uses too.
LOCAL = None


@dataclass(frozen=True)
class Principal:
    """The caller behind a request: a tenant (None: the local, untenanted store), the
    users of it the caller may reach, and whether it may write."""

    tenant: str | None
    read_only: bool = False
    key_id: str | None = None
    users: UserScope = ANY_USER

    def require_write(self) -> None:
        if self.read_only:
            raise PermissionDeniedError("this API key is read-only")


LOCAL_PRINCIPAL = Principal(tenant=LOCAL)


class TenantRegistry:
    """One lazily opened, cached `Memory` per tenant; thread-safe; closes all on close()."""

    def __init__(self, store: str | os.PathLike | None, config: Config, *, embedder: Embedder | None = None,
                 clock=None) -> None:
        self.store = store if store is not None else config.store
        self.config = config
        self._embedder = embedder
        self._owns_embedder = embedder is None
        self._clock = clock
        self._memories: dict[str | None, object] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = make_embedder(self.config)
            return self._embedder

    def memory(self, tenant: str | None):
        """The tenant's `Memory`, opened on first use."""
        from ..memory import Memory

        found = self._memories.get(tenant)
        if found is not None:
            return found
        embedder = self.embedder
        with self._lock:
            if self._closed:
                raise ConfigError("the tenant registry is closed")
            found = self._memories.get(tenant)
            if found is None:
                found = Memory(self.store, config=self.config, embedder=embedder, clock=self._clock, tenant=tenant)
                self._memories[tenant] = found
            return found

    def open_tenants(self) -> list[str | None]:
        with self._lock:
            return list(self._memories)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            memories, self._memories = list(self._memories.values()), {}
            embedder = self._embedder
        for memory in memories:
            memory.close()
        close = getattr(embedder, "close", None)
        if self._owns_embedder and callable(close):
            close()
