"""Which users a caller may reach: any user of its tenant (the default), a list of user
ids, or every id that begins with a prefix (an app's end users, e.g. `app1:`); and the
user a request without `user_id` means (its default user).

Pure logic over strings: the key stores persist a `UserScope`, the `Principal` carries
it, and `access.ScopedMemory` applies it to every operation."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidInputError, PermissionDeniedError
from ..types import _check_id

MAX_USERS = 1000  # ids one key may list; an app with more users wants a prefix


def check_name(what: str, value: object, *, required: bool) -> str | None:
    """An id as the library checks it, spelt one way: no leading or trailing whitespace and no
    control characters, so `"acme "` is refused rather than made a second `acme`."""
    _check_id(what, value, required=required)
    if value is None:
        return None
    assert isinstance(value, str)
    if value != value.strip():
        raise InvalidInputError(f"{what} {value!r} has leading or trailing whitespace; ids are compared exactly, "
                                "so send it without")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInputError(f"{what} must not hold control characters (newlines, tabs)")
    return value


@dataclass(frozen=True)
class UserScope:
    """The users a key reaches. Empty `users` and no `prefix`: every user of the tenant."""

    users: tuple[str, ...] = ()
    prefix: str | None = None
    default: str | None = None
    _set: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_set", frozenset(self.users))

    @classmethod
    def make(cls, users: object = (), prefix: object = None, default: object = None) -> "UserScope":
        """A checked scope. One listed user (and no prefix) is also the default user."""
        if isinstance(users, str) or not isinstance(users, (list, tuple, set, frozenset)):
            raise InvalidInputError("users must be a list of user ids")
        listed = tuple(dict.fromkeys(check_name("user id", u, required=True) for u in users))
        if len(listed) > MAX_USERS:
            raise InvalidInputError(f"a key may list at most {MAX_USERS} users; give a user id prefix instead")
        check_name("user prefix", prefix, required=False)
        check_name("default user", default, required=False)
        if default is None and len(listed) == 1 and prefix is None:
            default = listed[0]
        scope = cls(users=listed, prefix=prefix, default=default)  # type: ignore[arg-type]
        if default is not None and not scope.allows(default):  # type: ignore[arg-type]
            raise InvalidInputError(f"the default user {default!r} is outside the key's users ({scope.describe()})")
        return scope

    @property
    def restricted(self) -> bool:
        return bool(self.users) or self.prefix is not None

    @property
    def only(self) -> str | None:
        """The one user of a key scoped to exactly one user id, else None."""
        return self.users[0] if len(self.users) == 1 and self.prefix is None else None

    def allows(self, user_id: str) -> bool:
        if not self.restricted:
            return True
        return user_id in self._set or (self.prefix is not None and user_id.startswith(self.prefix))

    def describe(self) -> str:
        parts = [", ".join(self.users)] if self.users else []
        if self.prefix is not None:
            parts.append(f"{self.prefix}*")
        return "; ".join(parts) if parts else "any user"

    # -- applied to a request ----------------------------------------------------------

    def user(self, given: str | None) -> str:
        """The user a request acts for: `given`, if the scope allows it, else the default
        user. PermissionDeniedError outside the scope; InvalidInputError with neither."""
        if given is None:
            if self.default is None:
                raise InvalidInputError("user_id is required (this API key has no default user)")
            return self.default
        self.check(given)
        return given

    def check(self, user_id: str) -> None:
        if isinstance(user_id, str) and not self.allows(user_id):
            raise PermissionDeniedError(f"this API key may not reach user_id {user_id!r} "
                                        f"(its users: {self.describe()})")

    def narrow(self, given: str | None) -> str | None:
        """The user an operation by memory id is narrowed to: `given` (checked), else the
        key's one user, else None (the caller checks the memory's owner itself)."""
        if given is not None:
            self.check(given)
            return given
        return self.only


ANY_USER = UserScope()


def check_tenant(tenant: object) -> str:
    """A tenant's name, spelt one way: `"acme "` is refused, never a second tenant."""
    return check_name("tenant", tenant, required=True)  # type: ignore[return-value]
