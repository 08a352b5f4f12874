"""The Store seam: what every backend (SQLite now, PostgreSQL later) provides.

Stores receive validated, typed input; they own transactions, scoping and indexes.
Every read takes the caller's Scope and never returns rows outside it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..types import Record, Scope, ScoredId, Version
from .filters import Condition


@dataclass(frozen=True)
class NewRecord:
    id: str
    scope: Scope
    kind: str
    text: str
    created_at: str
    recorded_at: str
    role: str | None = None
    name: str | None = None
    sources: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    valid_to: str | None = None


@dataclass(frozen=True)
class ExportedRecord:
    record: Record
    vector: np.ndarray | None
    versions: list[Version]


class Store(Protocol):
    url: str

    def embedder_name(self) -> tuple[str, int] | None: ...
    def set_embedder_name(self, name: str, dim: int) -> None: ...

    def insert(self, records: Sequence[NewRecord], vectors: np.ndarray, *, actor: str | None) -> list[Record]: ...
    def get(self, id: str, *, user_id: str | None = None) -> Record | None: ...
    def by_rowids(self, rowids: Sequence[int], scope: Scope) -> dict[int, Record]: ...
    def list(self, scope: Scope, conditions: list[Condition], limit: int, offset: int) -> list[Record]: ...
    def count(self, scope: Scope) -> int: ...
    def keyword_search(self, scope: Scope, query: str, conditions: list[Condition], limit: int) -> list[ScoredId]: ...
    def vector_search(self, scope: Scope, vector: np.ndarray, conditions: list[Condition], limit: int) -> list[ScoredId]: ...
    def update(self, id: str, text: str, vector: np.ndarray, *, at: str, actor: str | None, reason: str | None,
               metadata: dict[str, Any] | None = None) -> Record: ...
    def delete(self, id: str, *, at: str, actor: str | None) -> bool: ...
    def history(self, id: str) -> list[Version]: ...
    def forget(self, scope: Scope) -> int: ...
    def reset(self) -> None: ...
    def export(self, scope: Scope) -> Iterator[ExportedRecord]: ...
    def import_records(self, items: Sequence[ExportedRecord], vectors: np.ndarray) -> int: ...
    def stats(self, user_id: str | None = None) -> dict[str, Any]: ...
    def close(self) -> None: ...
