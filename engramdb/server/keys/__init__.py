"""API keys: each belongs to a tenant, is shown once, and is kept only as a hash.

Keys live in a small control store beside the main one, behind the `KeyStore` protocol
(base.py, with what a key is): for SQLite, `<name>.keys.db` next to `<name>.db`
(sqlite.py); for PostgreSQL, the schema `engram_control` of the store's database
(postgres.py), so that every server on that database shares them. `open_key_store`
imports only the backend a URL asks for.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import ConfigError
from .base import ApiKey, KeyStore, NewKey

__all__ = ["ApiKey", "KeyStore", "NewKey", "open_key_store"]


def open_key_store(url: str | os.PathLike | None, keys_file: str | os.PathLike | None = None) -> KeyStore:
    """The key store that goes with a store URL: `keys_file` when given (a SQLite file,
    wherever the store lives), else the file beside a SQLite store, or the schema
    `engram_control` of a PostgreSQL store's database."""
    from ...stores import sqlite_path
    from .sqlite import SQLiteKeyStore, keys_path

    if keys_file is not None:
        return SQLiteKeyStore(Path(keys_file).expanduser())
    text = os.fspath(url) if url is not None else None
    if text is not None and "://" in text and not text.startswith("sqlite:"):
        scheme = text.split("://", 1)[0]
        if scheme not in ("postgresql", "postgres"):
            raise ConfigError(f"unknown store URL scheme {scheme!r}; use sqlite:///path.db or postgresql://...")
        return _postgres_key_store(text)
    return SQLiteKeyStore(keys_path(sqlite_path(text)))


def _postgres_key_store(url: str) -> KeyStore:
    try:
        from .postgres import PostgresKeyStore
    except ImportError as exc:
        from ...errors import MissingDependencyError

        if exc.name and exc.name.split(".")[0] not in ("psycopg", "psycopg_pool"):
            raise
        raise MissingDependencyError(
            f"API keys on PostgreSQL need psycopg and psycopg-pool ({exc.name} is missing): "
            "pip install 'engramdb[postgres]'"
        ) from exc
    return PostgresKeyStore(url)
