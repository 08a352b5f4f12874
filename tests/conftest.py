"""Shared fixtures: real SQLite files in tmp_path, the fake embedder, store factories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores.sqlite import SQLiteStore


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "engram.db"


@pytest.fixture
def mem(db_path: Path, fake_embedder: FakeEmbedder):
    memory = Memory(db_path, embedder=fake_embedder)
    yield memory
    memory.close()


def _sqlite_factory(tmp_path: Path) -> Callable[[], SQLiteStore]:
    counter = iter(range(1_000_000))

    def make() -> SQLiteStore:
        return SQLiteStore(tmp_path / f"store-{next(counter)}.db")

    return make


# One entry per backend: adding PostgreSQL means adding one factory here.
STORE_FACTORIES: dict[str, Callable[[Path], Callable[[], object]]] = {
    "sqlite": _sqlite_factory,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path):
    """A callable that opens a fresh, empty store of the parametrized backend."""
    opened = []
    make = STORE_FACTORIES[request.param](tmp_path)

    def factory():
        store = make()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()

