"""API keys in PostgreSQL: the schema `engram_control` of the store's database, so every
`engram serve` on that database shares one set of keys and sees a revocation at once.

The same `KeyStore` as SQLite's (base.py owns minting, hashing and checking); here only
the I/O: a small connection pool, named migrations recorded in the control schema's
`schema_migrations` and applied by the stores' migration runner under their advisory
lock, psycopg's errors translated to ConfigError and StorageError. No key is cached: each
request reads its row. Only psycopg is imported (not the PostgreSQL store, nor NumPy).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from ...clock import SystemClock, format_ts
from ...errors import NotFoundError, StorageError, UsageError
from ...stores.postgres_connection import (
    check_schema_name,
    check_url,
    connect,
    driver_message,
    migrate_schema,
    redact,
)
from .base import (
    COLUMNS,
    ApiKey,
    NewKey,
    TouchThrottle,
    check_secret,
    check_tenant_filter,
    hash_key,
    is_key_id,
    key_id_of,
    mint,
    row_key,
    scope_columns,
)

CONTROL_SCHEMA = "engram_control"

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_api_keys",
        """
        CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            name TEXT,
            key_hash TEXT NOT NULL,
            read_only BOOLEAN NOT NULL DEFAULT FALSE,
            created_at TEXT NOT NULL,
            last_used_at TEXT,
            revoked_at TEXT
        );
        CREATE INDEX api_keys_tenant ON api_keys (tenant);
        """,
    ),
    (
        # The users a key reaches (a JSON list of ids, and/or an id prefix; neither: every
        # user of its tenant) and the user a request without user_id means.
        "0002_key_users",
        """
        ALTER TABLE api_keys ADD COLUMN users TEXT;
        ALTER TABLE api_keys ADD COLUMN user_prefix TEXT;
        ALTER TABLE api_keys ADD COLUMN default_user TEXT;
        """,
    ),
]


class PostgresKeyStore:
    def __init__(self, url: str, *, schema: str = CONTROL_SCHEMA, clock: Any = None, pool_size: int = 4,
                 pool_timeout: float = 30.0, connect_timeout: int = 10) -> None:
        self.schema = check_schema_name(schema)
        self.url = redact(url)
        self._clock = clock or SystemClock()
        self._touch_due = TouchThrottle()
        self._closed = False
        check_url(url)
        self._migrate(url, connect_timeout)
        search_path = sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), timeout=pool_timeout, open=False,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout},
            configure=lambda conn: conn.execute(search_path), check=ConnectionPool.check_connection,
            name=f"engram-keys-{self.schema}",
        )
        self._pool.open(wait=False)

    def _migrate(self, url: str, connect_timeout: int) -> None:
        """The control schema and its tables, on one direct connection, in one transaction
        under the lock every Engram schema change takes."""
        conn = connect(url, connect_timeout=connect_timeout)
        try:
            with conn:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
                migrate_schema(conn, self.schema, MIGRATIONS, owner=f"the API keys in {self.url}", clock=self._clock)
        except psycopg.Error as exc:
            raise StorageError(f"cannot prepare the API keys in {self.url}: {driver_message(exc)}") from exc

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        if self._closed:
            raise UsageError("this key store is closed")
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StorageError(f"no connection to {self.url}: {exc}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"the API keys in {self.url} failed: {driver_message(exc)}") from exc

    def _exec(self, query: str, params: tuple = ()) -> None:
        with self._connection() as conn:
            conn.execute(query, params)

    def _one(self, query: str, params: tuple = ()) -> tuple | None:
        with self._connection() as conn:
            return conn.execute(query, params).fetchone()

    def _all(self, query: str, params: tuple = ()) -> list[tuple]:
        with self._connection() as conn:
            return conn.execute(query, params).fetchall()

    def _now(self) -> str:
        return format_ts(self._clock.now())

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self._all("SELECT name FROM schema_migrations ORDER BY name")]

    def create(self, tenant: str, *, read_only: bool = False, name: str | None = None, users: Any = (),
               user_prefix: str | None = None, default_user: str | None = None) -> NewKey:
        made = mint(tenant, read_only=read_only, name=name, now=self._now(), users=users, user_prefix=user_prefix,
                    default_user=default_user)
        key = made.key
        self._exec(
            "INSERT INTO api_keys (key_id, tenant, name, key_hash, read_only, created_at, users, user_prefix, "
            "default_user) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (key.key_id, key.tenant, key.name, hash_key(made.secret), key.read_only, key.created_at,
             *scope_columns(key)),
        )
        return made

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        tenant = check_tenant_filter(tenant)
        where, params = ("WHERE tenant = %s", (tenant,)) if tenant is not None else ("", ())
        rows = self._all(f"SELECT {COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id", params)
        return [row_key(row) for row in rows]

    def get(self, key_id: str) -> ApiKey:
        row = None
        if is_key_id(key_id):
            row = self._one(f"SELECT {COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,))
        if row is None:
            raise NotFoundError(f"no API key with id {key_id!r}")
        return row_key(row)

    def revoke(self, key_id: str) -> ApiKey:
        self.get(key_id)
        # Only the first revocation sets revoked_at: a second (from any server) keeps it.
        self._exec("UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL",
                   (self._now(), key_id))
        return self.get(key_id)

    def verify(self, secret: str) -> ApiKey:
        """The live key behind a presented secret, or AuthenticationError."""
        key_id = key_id_of(secret)
        row = self._one(f"SELECT {COLUMNS}, key_hash FROM api_keys WHERE key_id = %s", (key_id,))
        key = check_secret(None if row is None else row_key(row[:-1]), None if row is None else row[-1], secret)
        if self._touch_due.due(key_id):  # last use, at most once a minute per key and server
            self._exec("UPDATE api_keys SET last_used_at = %s WHERE key_id = %s", (self._now(), key_id))
        return key

    def ping(self) -> None:
        self._one("SELECT 1")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.close()
