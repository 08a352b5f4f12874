"""The derivation rule for activation states: a state follows the memories its block was
built from. `Memory` calls `follow` after every erasure, update, forget and reset (before
the call returns) and after each background distillation job; a chat calls `valid` again
before it loads a state, so a state whose memory changed in another process is never used.

Pure policy over the cache and the store's reads: which states are stale is
`cache.stale`, over the current records the store returns."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..config import Config, default_data_dir
from ..keys import content_hash
from ..stores import sqlite_path
from .cache import Entry, StateCache, stale

SQLITE_PREFIX = "sqlite:///"


def store_id(store: Any) -> str:
    """A store's name in the index (a hash of its URL: no password in any file)."""
    return hashlib.sha256(str(store.url).encode("utf-8")).hexdigest()[:24]


def folder(config: Config, store: Any) -> Path:
    """Where a store's states live: `Config.activation_dir`, or beside the SQLite file
    (`engram.db.activation/`), or for PostgreSQL in the user's data dir."""
    if config.activation_dir:
        return Path(config.activation_dir).expanduser()
    url = str(store.url)
    if url.startswith(SQLITE_PREFIX):
        path = sqlite_path(url)
        return path.parent / f"{path.name}.activation"
    return default_data_dir() / "activation" / store_id(store)


def cache_for(config: Config, store: Any) -> StateCache:
    return StateCache(folder(config, store), config.activation_max_bytes)


def current_sources(store: Any, user_id: str, ids: list[str]) -> dict[str, str]:
    """Memory id -> content hash for those of `ids` that are current (never superseded,
    retracted or erased) in the user's scope."""
    found = store.records_by_ids(ids, user_id) if ids else []
    return {r.id: content_hash(r.text) for r in found if r.valid_to is None}


def valid(store: Any, entry: Entry) -> bool:
    return not stale([entry], current_sources(store, entry.user_id, sorted(entry.sources)))


def follow(cache: StateCache, store: Any, *, tenant: str | None, user_id: str | None,
           whole: bool = False) -> int:
    """Delete the states of `user_id` (every user's with None) that are stale; with
    `whole` (the user's memories were all erased), every state of the user. Returns how
    many were deleted."""
    entries = cache.entries(store=store_id(store), tenant=tenant, user_id=user_id)
    if not entries:
        return 0
    if whole:
        return cache.drop(e.key for e in entries)
    by_user: dict[str, list[Entry]] = {}
    for entry in entries:
        by_user.setdefault(entry.user_id, []).append(entry)
    gone: list[str] = []
    for user, own in by_user.items():
        ids = sorted({mid for e in own for mid in e.sources})
        gone += [e.key for e in stale(own, current_sources(store, user, ids))]
    return cache.drop(gone)
