"""Moving a whole store to another (`engram migrate`), losslessly: every user's records
with their ids, timestamps, metadata and vectors, every version of their history, the
tombstones of deleted memories, and the embedder's name; and what distillation keeps
beside the records (each derived memory's slot, the turns it came from, the queued jobs),
so that erasing a turn still erases what was derived from it. Works between any two
stores (SQLite and PostgreSQL either way), through Store methods only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

import numpy as np

from ..errors import ConfigError, UsageError
from ..types import Scope
from .base import ExportedRecord, Store

BATCH = 500
T = TypeVar("T")


@dataclass(frozen=True)
class Moved:
    users: int
    records: int
    tombstones: int
    embedder: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"users": self.users, "records": self.records, "tombstones": self.tombstones,
                "embedder": self.embedder}


def copy_store(source: Store, target: Store) -> Moved:
    """Copy everything in `source` into the empty store `target`. Each batch is one
    transaction; re-running after a failure skips what was already copied."""
    embedder = source.embedder_name()
    recorded = target.embedder_name()
    if recorded is not None and embedder is not None and recorded != embedder:
        raise ConfigError(f"the target store was embedded with {recorded[0]}, the source with {embedder[0]}")
    users = source.users()
    if set(target.users()) - set(users):
        raise UsageError("the target store holds other users' memories; migrate into an empty store")
    if embedder is not None:
        target.set_embedder_name(*embedder)
    records = 0
    for user in users:
        for batch in _batches(source.export(Scope(user))):
            records += target.import_records(batch, _vectors(batch))
        target.import_derived(user, source.export_derived(user))
    tombstones = 0
    for chunk in _batches(source.tombstones()):
        tombstones += target.import_tombstones(chunk)
    return Moved(len(users), records, tombstones, embedder[0] if embedder else None)


def _vectors(items: list[ExportedRecord]) -> np.ndarray:
    """The batch's vectors as one matrix; a record without one gets a NaN row (stored as none)."""
    dim = next((len(item.vector) for item in items if item.vector is not None), 1)
    out = np.full((len(items), dim), np.nan, dtype=np.float32)
    for row, item in enumerate(items):
        if item.vector is not None:
            out[row] = item.vector
    return out


def _batches(items: Iterable[T]) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, BATCH)):
        yield batch

