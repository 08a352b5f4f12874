"""Activation states on disk: a local model's state after it read a user's stable memory
block, one file each, beside the store.

A state is keyed by the model (its file's sha256 and the context settings: `model_id`),
the store, the tenant, the user and the block's content hash. `index.json` in the same
folder records, for each state, which memories the block was built from (their ids and
content hashes: never text), its size and when it was last used; the folder is bounded
by `max_bytes`, the least recently used states evicted first.

The derivation rule: a state is a derived memory. `stale()` names the states whose
memories are no longer all current with the text they had (erased, superseded,
retracted, updated); `Memory` drops them after every erasure or update, before the call
returns, and after each distillation job (engramdb/memory.py, `follow_states`). A state
file holds the model's key/value cache of the block (and the block's tokens): text, in
effect, so it is deleted outright, never kept "unused".

Writes are atomic (a temporary file, then `os.replace`); the index is guarded by a
lock within the process and an advisory file lock (`fcntl`, where there is one) across
processes. Nothing is created until the first state is put."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the process lock alone
    fcntl = None  # type: ignore[assignment]

from ..errors import ConfigError, StorageError
from ..keys import content_hash

INDEX = "index.json"
LOCK = "index.lock"
SUFFIX = ".state"
FORMAT = 1


@dataclass(frozen=True)
class Entry:
    """One state in the index: what it was built from, never the text itself."""

    key: str
    model: str
    store: str
    tenant: str | None
    user_id: str
    block_hash: str
    sources: dict[str, str]  # memory id -> content hash of its text when the block was built
    tokens: int
    bytes: int
    created_at: float
    used_at: float = field(default=0.0)

    @property
    def file(self) -> str:
        return self.key + SUFFIX


def state_key(model: str, store: str, tenant: str | None, user_id: str, block_hash: str) -> str:
    """The file name of a state (hex): opaque, so that no user id is in a file name."""
    parts = json.dumps([model, store, tenant, user_id, block_hash])
    return hashlib.sha256(parts.encode("utf-8")).hexdigest()


def sources_of(records: Mapping[str, str]) -> dict[str, str]:
    """Memory id -> text as the manifest's memory id -> content hash."""
    return {mid: content_hash(text) for mid, text in records.items()}


class StateCache:
    """The states in `folder`, at most `max_bytes` of them on disk."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConfigError(f"activation_max_bytes must be a positive integer, got {max_bytes!r}")
        self.folder = Path(folder).expanduser()
        self.max_bytes = max_bytes
        self._lock = threading.RLock()

    # -- reading ------------------------------------------------------------------------

    def entries(self, *, store: str | None = None, tenant: str | None = None,
                user_id: str | None = None) -> list[Entry]:
        """The states in the index, of one store / tenant / user when given."""
        with self._locked(create=False):
            found = self._read_index().values()
        return [e for e in found if (store is None or e.store == store) and (user_id is None or e.user_id == user_id)
                and (tenant is None or e.tenant == tenant)]

    def get(self, key: str) -> bytes | None:
        """A state's bytes (marked as just used), or None when there is none."""
        with self._locked(create=False) as present:
            if not present:
                return None
            index = self._read_index()
            entry = index.get(key)
            if entry is None:
                return None
            try:
                data = (self.folder / entry.file).read_bytes()
            except FileNotFoundError:  # the file went (another process evicted it): forget it
                del index[key]
                self._write_index(index)
                return None
            index[key] = _used(entry)
            self._write_index(index)
            return data

    def total_bytes(self) -> int:
        return sum(e.bytes for e in self.entries())

    # -- writing ------------------------------------------------------------------------

    def put(self, entry: Entry, data: bytes) -> Entry:
        """Store a state (replacing one with the same key), then evict the least recently
        used states until the folder is within `max_bytes`. A state bigger than the bound
        is not kept (returned, not stored: `get` will miss)."""
        entry = Entry(**{**asdict(entry), "bytes": len(data), "used_at": time.time()})
        if entry.bytes > self.max_bytes:
            return entry
        with self._locked(create=True):
            index = self._read_index()
            path = self.folder / entry.file
            tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise StorageError(f"cannot write an activation state in {self.folder}: {exc}") from exc
            index[entry.key] = entry
            for old in _evicted(index.values(), self.max_bytes, keep=entry.key):
                self._unlink(old)
                del index[old.key]
            self._write_index(index)
        return entry

    def drop(self, keys: Iterable[str]) -> int:
        """Delete these states (files first, then their index rows); returns how many."""
        wanted = set(keys)
        if not wanted:
            return 0
        with self._locked(create=False) as present:
            if not present:
                return 0
            index = self._read_index()
            gone = [index[k] for k in wanted if k in index]
            for entry in gone:
                self._unlink(entry)
                del index[entry.key]
            self._write_index(index)
            self._sweep(index)
        return len(gone)

    def drop_all(self, *, store: str | None = None, tenant: str | None = None, user_id: str | None = None) -> int:
        with self._lock:
            return self.drop(e.key for e in self.entries(store=store, tenant=tenant, user_id=user_id))

    # -- the folder -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, *, create: bool) -> Iterator[bool]:
        """The index lock (thread and, where it can, process); yields whether the folder
        exists (it is made only with `create`)."""
        with self._lock:
            if not self.folder.is_dir():
                if not create:
                    yield False
                    return
                try:
                    self.folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StorageError(f"cannot create the activation folder {self.folder}: {exc}") from exc
            if fcntl is None:
                yield True
                return
            with open(self.folder / LOCK, "a+b") as lock:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
                try:
                    yield True
                finally:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read_index(self) -> dict[str, Entry]:
        try:
            raw = json.loads((self.folder / INDEX).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StorageError(f"the activation index {self.folder / INDEX} cannot be read: {exc}") from exc
        if raw.get("format") != FORMAT:
            raise StorageError(f"the activation index {self.folder / INDEX} has format {raw.get('format')!r}, "
                               f"this Engram reads {FORMAT}: delete the folder (states are rebuilt)")
        return {row["key"]: Entry(**row) for row in raw["states"]}

    def _write_index(self, index: Mapping[str, Entry]) -> None:
        if not self.folder.is_dir():
            return
        path = self.folder / INDEX
        tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        body = json.dumps({"format": FORMAT, "states": [asdict(e) for e in index.values()]}, sort_keys=True)
        try:
            tmp.write_text(body, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"cannot write the activation index {path}: {exc}") from exc

    def _unlink(self, entry: Entry) -> None:
        try:
            (self.folder / entry.file).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # a state that cannot be deleted is an error, never ignored
            raise StorageError(f"cannot delete the activation state {self.folder / entry.file}: {exc}") from exc

    def _sweep(self, index: Mapping[str, Entry]) -> None:
        """State files the index does not name (a process died between writing one and
        the index): deleted, so no state outlives its record."""
        known = {e.file for e in index.values()}
        for path in self.folder.glob("*" + SUFFIX):
            if path.name not in known:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for path in self.folder.glob("*.tmp*"):
            if time.time() - path.stat().st_mtime > 3600:  # a write that died long ago
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def stale(entries: Sequence[Entry], current: Mapping[str, str]) -> list[Entry]:
    """The entries built from a memory that is not current any more with the text it had:
    `current` maps each current memory id (of the entries' user) to its content hash.
    Pure: the caller reads `current` from the store."""
    return [e for e in entries if any(current.get(mid) != digest for mid, digest in e.sources.items())]


def _used(entry: Entry) -> Entry:
    return Entry(**{**asdict(entry), "used_at": time.time()})


def _evicted(entries: Iterable[Entry], max_bytes: int, *, keep: str) -> list[Entry]:
    """Least recently used first, until the rest fit `max_bytes` (`keep` stays)."""
    ordered = sorted(entries, key=lambda e: (e.used_at, e.created_at, e.key))
    total = sum(e.bytes for e in ordered)
    out = []
    for entry in ordered:
        if total <= max_bytes:
            break
        if entry.key == keep:
            continue
        out.append(entry)
        total -= entry.bytes
    return out


def describe(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """The index rows as plain dicts (for `engram chat --states`, the bench)."""
    return [asdict(e) for e in entries]
