"""A user's state: looked up, checked against the store, or read and kept. Shared by the
chat (a turn) and the runner (in the background)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from . import follow
from .cache import Entry, StateCache, sources_of, state_key
from .engine import Engine
from .prompt import Block, system_segments


@dataclass(frozen=True)
class Prefix:
    block: Block
    tokens: list[int]
    key: str


def prefix_of(memory: Any, engine: Engine, block: Block, user_id: str) -> Prefix:
    tokens = engine.tokens(system_segments(block))
    key = state_key(engine.model_id, follow.store_id(memory.store), memory.tenant, user_id, block.hash)
    return Prefix(block, tokens, key)


def present(memory: Any, cache: StateCache, prefix: Prefix, user_id: str) -> bool:
    """Whether a state of this prefix is kept. The user's states are checked against the
    store first (another process, or a folder restored from a backup, may hold states
    of memories erased since): the stale ones are deleted, whichever prefix they are of."""
    follow.follow(cache, memory.store, tenant=memory.tenant, user_id=user_id)
    return any(e.key == prefix.key for e in cache.entries(store=follow.store_id(memory.store), tenant=memory.tenant,
                                                         user_id=user_id))


def cached(memory: Any, cache: StateCache, prefix: Prefix, user_id: str) -> bytes | None:
    """The kept state of this prefix (checked as `present` says), or None."""
    return cache.get(prefix.key) if present(memory, cache, prefix, user_id) else None


def keep(memory: Any, engine: Engine, cache: StateCache, prefix: Prefix, user_id: str) -> bytes:
    """Read the prefix into a state and keep it. Put first, checked after: an erasure that
    landed while the model read is seen by the check, or its own `follow` sees the file."""
    state = engine.read(prefix.tokens)
    entry = Entry(key=prefix.key, model=engine.model_id, store=follow.store_id(memory.store), tenant=memory.tenant,
                  user_id=user_id, block_hash=prefix.block.hash, sources=sources_of(prefix.block.sources),
                  tokens=len(prefix.tokens), bytes=len(state), created_at=time.time())
    cache.put(entry, state)
    if not follow.valid(memory.store, entry):
        cache.drop([entry.key])
    return state
