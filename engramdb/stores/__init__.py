"""Store URLs resolve here, importing only the backend that is asked for."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..config import Config, default_data_dir
from ..errors import ConfigError
from .base import ExportedRecord, NewRecord, Store

__all__ = ["ExportedRecord", "NewRecord", "Store", "open_postgres", "open_store", "sqlite_path", "tenant_slug"]


def sqlite_path(url: str | os.PathLike | None) -> Path:
    """The file behind a SQLite URL, a bare path, or None (the user's data dir)."""
    if url is None:
        return default_data_dir() / "engram.db"
    text = os.fspath(url)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):]
    elif text.startswith("sqlite://"):
        raise ConfigError(f"a SQLite URL needs three slashes: sqlite:///path/to/file.db, got {text!r}")
    if not text or text == ":memory:":
        raise ConfigError("an Engram SQLite store needs a file path (in-memory databases cannot be shared)")
    return Path(text).expanduser()


def tenant_slug(tenant: str) -> str:
    """A tenant's name as a safe file or schema name: stable, opaque, no injection."""
    from ..types import _check_id

    _check_id("tenant", tenant, required=True)
    return "t_" + hashlib.sha256(tenant.encode("utf-8")).hexdigest()[:32]


def tenant_sqlite_path(path: Path, tenant: str) -> Path:
    """Each tenant of a SQLite store lives in its own file beside the main one."""
    return path.parent / f"{path.stem}.tenants" / f"{tenant_slug(tenant)}.db"


def open_store(url: str | os.PathLike | None, config: Config, *, tenant: str | None = None,
               read_only: bool = False) -> Store:
    """Open the store behind a URL. With a tenant, the store holds only that tenant's data:
    a file of its own for SQLite, a schema of its own for PostgreSQL, so no query can
    reach another tenant's rows whatever its filters. `read_only` opens an existing,
    current store without creating, migrating or writing anything (a missing one is a
    ConfigError); on PostgreSQL its connections are read-only transactions too."""
    text = os.fspath(url) if url is not None else None
    if text is not None and "://" in text and not text.startswith("sqlite:"):
        scheme = text.split("://", 1)[0]
        if scheme in ("postgresql", "postgres"):
            return open_postgres(text, config, tenant=tenant, read_only=read_only)
        raise ConfigError(f"unknown store URL scheme {scheme!r}; use sqlite:///path.db or postgresql://...")
    from .sqlite import SQLiteStore

    path = sqlite_path(text)
    if tenant is not None:
        path = tenant_sqlite_path(path, tenant)
    return SQLiteStore(path, busy_timeout_ms=config.busy_timeout_ms, ann_threshold=config.ann_threshold,
                       read_only=read_only)


def open_postgres(url: str, config: Config, *, tenant: str | None = None, read_only: bool = False) -> Store:
    """A PostgreSQL store; a tenant's lives in the schema `engram_<slug>` of its own."""
    try:
        from .postgres import PostgresStore
    except ImportError as exc:
        from ..errors import MissingDependencyError

        if exc.name and exc.name.split(".")[0] not in ("psycopg", "psycopg_pool", "pgvector", "numpy"):
            raise
        raise MissingDependencyError(
            f"the PostgreSQL store needs psycopg, psycopg-pool and pgvector ({exc.name} is missing): "
            "pip install 'engramdb[postgres]'"
        ) from exc
    schema = None if tenant is None else "engram_" + tenant_slug(tenant)
    return PostgresStore(url, schema=schema, ann_threshold=config.ann_threshold, pool_timeout=config.pool_timeout_s,
                         read_only=read_only)
