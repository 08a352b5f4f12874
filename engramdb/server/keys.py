"""API keys: each belongs to a tenant, is shown once, and is kept only as a hash.

A key reads `egk_<key id>_<secret>`. The key id (12 hex digits) finds the row; the
SHA-256 of the whole key must match the stored hash. Keys live in a small control
store beside the main one, behind the `KeyStore` protocol: for SQLite, `<name>.keys.db`
next to `<name>.db`; for PostgreSQL, the schema `engram_control` of the store's database
(keys_postgres.py), so that every server on that database shares them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
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
from ..errors import AuthenticationError, ConfigError, NotFoundError, StorageError, UsageError
from ..types import _check_id
from .scopes import UserScope
from .tenants import check_tenant

T = TypeVar("T")

PREFIX = "egk"
_KEY = re.compile(rf"^{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{20,128}})$")
_KEY_ID = re.compile(r"^[0-9a-f]{12}$")
_KEY_ID_PREFIX = re.compile(r"^[0-9a-f]{4,12}$")
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
    scope: UserScope = UserScope()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["scope"]
        return {**data, "users": list(self.scope.users), "user_prefix": self.scope.prefix,
                "default_user": self.scope.default}


@dataclass(frozen=True)
class NewKey:
    """A key just created: the only time its secret exists outside the caller's hands."""

    key: ApiKey
    secret: str


class KeyStore(Protocol):
    def create(self, tenant: str, *, read_only: bool = False, name: str | None = None,
               users: tuple[str, ...] | list[str] = (), user_prefix: str | None = None,
               default_user: str | None = None) -> NewKey: ...
    def list(self, tenant: str | None = None) -> list[ApiKey]: ...
    def get(self, key_id: str) -> ApiKey: ...
    def revoke(self, key_id: str) -> ApiKey: ...
    def verify(self, secret: str) -> ApiKey: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def mint(tenant: str, *, read_only: bool, name: str | None, now: str, users: Any = (),
         user_prefix: str | None = None, default_user: str | None = None) -> NewKey:
    """A new random key for a tenant (not yet stored), reaching `users` and the ids that
    begin with `user_prefix` (neither: every user of the tenant)."""
    check_tenant(tenant)
    _check_id("name", name, required=False)
    scope = UserScope.make(users, user_prefix, default_user)
    key_id = secrets.token_hex(6)
    secret = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    key = ApiKey(key_id=key_id, tenant=tenant, name=name, read_only=bool(read_only), created_at=now,
                 last_used_at=None, revoked_at=None, scope=scope)
    return NewKey(key=key, secret=secret)


def scope_columns(key: ApiKey) -> tuple[str | None, str | None, str | None]:
    """How a key's users are stored: (users as a JSON list or NULL, prefix, default user)."""
    users = json.dumps(list(key.scope.users)) if key.scope.users else None
    return users, key.scope.prefix, key.scope.default


def row_key(row: tuple | Any) -> ApiKey:
    """An ApiKey from a row of COLUMNS (both stores)."""
    users = tuple(json.loads(row[7])) if row[7] else ()
    return ApiKey(key_id=row[0], tenant=row[1], name=row[2], read_only=bool(row[3]), created_at=row[4],
                  last_used_at=row[5], revoked_at=row[6], scope=UserScope(users=users, prefix=row[8], default=row[9]))


COLUMNS = "key_id, tenant, name, read_only, created_at, last_used_at, revoked_at, users, user_prefix, default_user"


def resolve_key_id(given: str, keys: list[ApiKey]) -> str:
    """The full id of the one key whose id begins with `given` (at least 4 hex digits),
    as `engram keys list` shows ids; NotFoundError for none, UsageError for several."""
    if is_key_id(given):
        return given
    if not isinstance(given, str) or _KEY_ID_PREFIX.match(given.rstrip("…")) is None:
        raise NotFoundError(f"no API key with id {given!r}")
    given = given.rstrip("…")
    matches = [k.key_id for k in keys if k.key_id.startswith(given)]
    if not matches:
        raise NotFoundError(f"no API key with id {given!r}")
    if len(matches) > 1:
        raise UsageError(f"{len(matches)} keys have ids beginning {given!r} ({', '.join(matches)}); give more of it")
    return matches[0]


def check_tenant_filter(tenant: str | None) -> str | None:
    return None if tenant is None else check_tenant(tenant)


def key_id_of(secret: str) -> str:
    """The key id a presented secret names, or AuthenticationError when it is malformed."""
    match = _KEY.match(secret) if isinstance(secret, str) else None
    if match is None:
        raise AuthenticationError("the API key is malformed")
    return match.group(1)


def is_key_id(key_id: object) -> bool:
    return isinstance(key_id, str) and _KEY_ID.match(key_id) is not None


def check_secret(key: ApiKey | None, stored_hash: str | None, secret: str) -> ApiKey:
    """The stored key if the secret hashes to its hash (compared in constant time) and it
    is not revoked; else AuthenticationError."""
    if key is None or stored_hash is None or not hmac.compare_digest(stored_hash, hash_key(secret)):
        raise AuthenticationError("the API key is not valid")
    if key.revoked_at is not None:
        raise AuthenticationError("the API key has been revoked")
    return key


class TouchThrottle:
    """Which keys are due a last_used_at write: at most one per key every TOUCH_EVERY_S in
    this process, so verifying a key is not a write per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def due(self, key_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
                return False
            self._last[key_id] = now
            return True


def keys_path(store_path: Path) -> Path:
    """The control store of a SQLite store file: `<stem>.keys.db` beside it."""
    return store_path.parent / f"{store_path.stem}.keys.db"


def open_key_store(url: str | os.PathLike | None, keys_file: str | os.PathLike | None = None) -> KeyStore:
    """The key store that goes with a store URL: `keys_file` when given (a SQLite file,
    wherever the store lives), else the file beside a SQLite store, or the schema
    `engram_control` of a PostgreSQL store's database."""
    from ..stores import sqlite_path

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
        from .keys_postgres import PostgresKeyStore
    except ImportError as exc:
        from ..errors import MissingDependencyError

        if exc.name and exc.name.split(".")[0] not in ("psycopg", "psycopg_pool", "pgvector", "numpy"):
            raise
        raise MissingDependencyError(
            f"API keys on PostgreSQL need psycopg and psycopg-pool ({exc.name} is missing): "
            "pip install 'engramdb[postgres]'"
        ) from exc
    return PostgresKeyStore(url)


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
        def apply(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            unknown = done - {name for name, _ in MIGRATIONS}
            if unknown:
                raise ConfigError(f"the key store {self.path} was written by a newer Engram "
                                  f"(migrations {sorted(unknown)}); upgrade engramdb")
            for name, script in MIGRATIONS:
                if name not in done:
                    for statement in filter(str.strip, script.split(";")):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, self._now()))

        self._run(apply, write=True)

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
