"""What an API key is, whatever store keeps it: minted, shown once, kept as a hash.

A key reads `egk_<key id>_<secret>`. The key id (12 hex digits) finds the row; the
SHA-256 of the whole key must match the stored hash. The `KeyStore` protocol is what the
server asks of a key store; sqlite.py and postgres.py beside this module are its two
backends (both keep the same columns, COLUMNS), and the package opens the one a store
URL names (`open_key_store`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ...errors import AuthenticationError, NotFoundError, UsageError
from ...types import _check_id
from ..scopes import UserScope, check_tenant

PREFIX = "egk"
_KEY = re.compile(rf"^{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{20,128}})$")
_KEY_ID = re.compile(r"^[0-9a-f]{12}$")
_KEY_ID_PREFIX = re.compile(r"^[0-9a-f]{4,12}$")
TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per key


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
