"""API keys: each belongs to a tenant, is shown once, and is kept only as a hash.

A key reads `egk_<key id>_<secret>`. The key id (12 hex digits) finds the row; the
SHA-256 of the whole key must match the stored hash. Keys live in a small control
store beside the main one (for SQLite, `<name>.keys.db` next to `<name>.db`), behind
the `KeyStore` protocol so that a PostgreSQL variant can follow.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..clock import SystemClock, format_ts
from ..errors import AuthenticationError, ConfigError, NotFoundError, StorageError
from ..types import _check_id

T = TypeVar("T")

PREFIX = "egk"
_KEY = re.compile(rf"^{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{20,128}})$")
_KEY_ID = re.compile(r"^[0-9a-f]{12}$")
TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per key

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
]


@dataclass(frozen=True)
class ApiKey:
    """What is stored about a key: never the secret."""

    key_id: str
    tenant: str
    name: str | None
    read_only: bool
    created_at: str
    last_used_at: str | None
    revoked_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NewKey:
    """A key just created: the only time its secret exists outside the caller's hands."""

    key: ApiKey
    secret: str


class KeyStore(Protocol):
    def create(self, tenant: str, *, read_only: bool = False, name: str | None = None) -> NewKey: ...
    def list(self, tenant: str | None = None) -> list[ApiKey]: ...
    def revoke(self, key_id: str) -> ApiKey: ...
    def verify(self, secret: str) -> ApiKey: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def keys_path(store_path: Path) -> Path:
    """The control store of a SQLite store file: `<stem>.keys.db` beside it."""
    return store_path.parent / f"{store_path.stem}.keys.db"


def open_key_store(url: str | os.PathLike | None, keys_file: str | os.PathLike | None = None) -> KeyStore:
    """The key store that goes with a store URL: `keys_file` when given (a SQLite file,
    wherever the store lives), else the file beside a SQLite store."""
    from ..stores import sqlite_path

    if keys_file is not None:
        return SQLiteKeyStore(Path(keys_file).expanduser())
    text = os.fspath(url) if url is not None else None
    if text is not None and "://" in text and not text.startswith("sqlite:"):
        raise ConfigError(
            f"API keys are kept in a SQLite file; for a {text.split('://', 1)[0]!r} store name one with "
            "--keys FILE (or ENGRAM_KEYS)"
        )
    return SQLiteKeyStore(keys_path(sqlite_path(text)))


class SQLiteKeyStore:
    def __init__(self, path: str | Path, *, clock: Any = None, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._touched: dict[str, float] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the key store {self.path}: {exc}") from exc
        self._migrate()

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
        def apply(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for name, script in MIGRATIONS:
                if name not in done:
                    for statement in filter(str.strip, script.split(";")):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, self._now()))

        self._run(apply, write=True)

    def _now(self) -> str:
        return format_ts(self._clock.now())

    def create(self, tenant: str, *, read_only: bool = False, name: str | None = None) -> NewKey:
        _check_id("tenant", tenant, required=True)
        _check_id("name", name, required=False)
        key_id = secrets.token_hex(6)
        secret = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id=key_id, tenant=tenant, name=name, read_only=bool(read_only), created_at=self._now(),
                     last_used_at=None, revoked_at=None)
        self._run(lambda conn: conn.execute(
            "INSERT INTO api_keys (key_id, tenant, name, key_hash, read_only, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key.key_id, key.tenant, key.name, hash_key(secret), int(key.read_only), key.created_at),
        ), write=True)
        return NewKey(key=key, secret=secret)

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        where, params = ("WHERE tenant = ?", [tenant]) if tenant is not None else ("", [])
        rows = self._run(lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id", params
        ).fetchall())
        return [_key(row) for row in rows]

    def get(self, key_id: str) -> ApiKey:
        row = None
        if isinstance(key_id, str) and _KEY_ID.match(key_id):
            row = self._run(lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone())
        if row is None:
            raise NotFoundError(f"no API key with id {key_id!r}")
        return _key(row)

    def revoke(self, key_id: str) -> ApiKey:
        current = self.get(key_id)
        if current.revoked_at is None:
            self._run(lambda conn: conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (self._now(), key_id)
            ), write=True)
        return self.get(key_id)

    def verify(self, secret: str) -> ApiKey:
        """The live key behind a presented secret, or AuthenticationError."""
        match = _KEY.match(secret) if isinstance(secret, str) else None
        if match is None:
            raise AuthenticationError("the API key is malformed")
        key_id = match.group(1)
        row = self._run(lambda conn: conn.execute(
            f"SELECT {_COLUMNS}, key_hash FROM api_keys WHERE key_id = ?", (key_id,)
        ).fetchone())
        if row is None or not hmac.compare_digest(row[-1], hash_key(secret)):
            raise AuthenticationError("the API key is not valid")
        key = _key(row[:-1])
        if key.revoked_at is not None:
            raise AuthenticationError("the API key has been revoked")
        self._touch(key_id)
        return key

    def _touch(self, key_id: str) -> None:
        """Record last use, at most once a minute per key (no write per request)."""
        now = time.monotonic()
        if now - self._touched.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
            return
        self._touched[key_id] = now
        self._run(lambda conn: conn.execute(
            "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (self._now(), key_id)
        ), write=True)

    def ping(self) -> None:
        self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_COLUMNS = "key_id, tenant, name, read_only, created_at, last_used_at, revoked_at"


def _key(row: tuple) -> ApiKey:
    return ApiKey(key_id=row[0], tenant=row[1], name=row[2], read_only=bool(row[3]), created_at=row[4],
                  last_used_at=row[5], revoked_at=row[6])
