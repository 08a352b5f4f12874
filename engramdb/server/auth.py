"""From an `Authorization: Bearer <key>` header to a `Principal`, for REST and MCP alike."""

from __future__ import annotations

from ..errors import AuthenticationError
from .keys import KeyStore
from .tenants import LOCAL_PRINCIPAL, Principal


class Authenticator:
    """With a key store, every request needs a live key; without one (`--no-auth`), every
    request is the local user's."""

    def __init__(self, keys: KeyStore | None) -> None:
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def principal(self, authorization: str | None) -> Principal:
        if self.keys is None:
            return LOCAL_PRINCIPAL
        if not authorization:
            raise AuthenticationError("missing API key: send `Authorization: Bearer <key>`")
        scheme, _, secret = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthenticationError("the Authorization header must read `Bearer <key>`")
        key = self.keys.verify(secret.strip())
        return Principal(tenant=key.tenant, read_only=key.read_only, key_id=key.key_id, users=key.scope)
