"""API keys in SQLite: a small file of their own beside the store (`<name>.keys.db`
next to `<name>.db`), or the file `--keys` names. One connection, one writer at a time;
its schema applied by the stores' migration runner."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ...clock import SystemClock, format_ts
from ...errors import NotFoundError, StorageError
from ...stores.migrations import migrate, sqlite_target
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

T = TypeVar("T")

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_api_keys",
        """
        CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            name TEXT,
            key_hash TEXT NOT NULL,
            read_only INTEGER NOT NULL DEFAULT 0,
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


def keys_path(store_path: Path) -> Path:
    """The key store of a SQLite store file: `<stem>.keys.db` beside it."""
    return store_path.parent / f"{store_path.stem}.keys.db"


class SQLiteKeyStore:
    def __init__(self, path: str | Path, *, clock: Any = None, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._touch_due = TouchThrottle()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the key store {self.path}: {exc}") from exc
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        with self._lock:
            try:
                if not write:
                    return work(self._conn)
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._conn)
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise StorageError(f"the key store {self.path} failed: {exc}") from exc

    def _migrate(self) -> None:
        self._run(lambda conn: migrate(sqlite_target(conn), MIGRATIONS, owner=f"the key store {self.path}",
                                       clock=self._clock), write=True)

    def _now(self) -> str:
        return format_ts(self._clock.now())

    def create(self, tenant: str, *, read_only: bool = False, name: str | None = None, users: Any = (),
               user_prefix: str | None = None, default_user: str | None = None) -> NewKey:
        made = mint(tenant, read_only=read_only, name=name, now=self._now(), users=users, user_prefix=user_prefix,
                    default_user=default_user)
        key = made.key
        self._run(lambda conn: conn.execute(
            "INSERT INTO api_keys (key_id, tenant, name, key_hash, read_only, created_at, users, user_prefix, "
            "default_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key.key_id, key.tenant, key.name, hash_key(made.secret), int(key.read_only), key.created_at,
             *scope_columns(key)),
        ), write=True)
        return made

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        tenant = check_tenant_filter(tenant)
        where, params = ("WHERE tenant = ?", [tenant]) if tenant is not None else ("", [])
        rows = self._run(lambda conn: conn.execute(
            f"SELECT {COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id", params
        ).fetchall())
        return [row_key(row) for row in rows]

    def get(self, key_id: str) -> ApiKey:
        row = None
        if is_key_id(key_id):
            row = self._run(lambda conn: conn.execute(
                f"SELECT {COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone())
        if row is None:
            raise NotFoundError(f"no API key with id {key_id!r}")
        return row_key(row)

    def revoke(self, key_id: str) -> ApiKey:
        current = self.get(key_id)
        if current.revoked_at is None:
            self._run(lambda conn: conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (self._now(), key_id)
            ), write=True)
        return self.get(key_id)

    def verify(self, secret: str) -> ApiKey:
        """The live key behind a presented secret, or AuthenticationError."""
        key_id = key_id_of(secret)
        row = self._run(lambda conn: conn.execute(
            f"SELECT {COLUMNS}, key_hash FROM api_keys WHERE key_id = ?", (key_id,)
        ).fetchone())
        key = check_secret(None if row is None else row_key(row[:-1]), None if row is None else row[-1], secret)
        if self._touch_due.due(key_id):  # last use, at most once a minute per key
            self._run(lambda conn: conn.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (self._now(), key_id)
            ), write=True)
        return key

    def ping(self) -> None:
        self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    def close(self) -> None:
        with self._lock:
            self._conn.close()
