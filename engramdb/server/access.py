"""A tenant's `Memory` as one caller may use it: the same operations, each bound to the
users the caller's key reaches (`scopes.UserScope`) and refused to a read-only key when
it writes. REST and MCP both go through here, so a key's scope holds on every surface.

- An operation on a scope (add, search, context, recall, list, forget, export, stats,
  jobs) acts for the `user_id` given, if the key reaches it (else PermissionDeniedError),
  or for the key's default user when none is given.
- An operation on a memory id (get, update, delete, history) finds a memory of a user
  outside the scope exactly as it finds no memory: NotFoundError.
- An import keeps the cube's users only where the key reaches every one of them."""

from __future__ import annotations

import os
from typing import Any

from .. import cube
from ..errors import NotFoundError, PermissionDeniedError
from ..types import AddResult, Hit, Recall, Record, Version
from .tenants import Principal


class ScopedMemory:
    def __init__(self, memory: Any, who: Principal) -> None:
        self.memory = memory
        self.who = who
        self.scope = who.users

    @property
    def config(self):
        return self.memory.config

    def _write(self) -> None:
        self.who.require_write()

    def user(self, given: str | None) -> str:
        """The user a scope operation acts for."""
        return self.scope.user(given)

    def _whole_tenant(self, given: str | None) -> str | None:
        """For stats and jobs: `given` (checked), or None (the whole tenant) for a key that
        reaches every user, or the default user of a scoped key."""
        if given is None and not self.scope.restricted:
            return None
        return self.user(given)

    # -- writes ------------------------------------------------------------------------

    def add(self, messages: Any, *, user_id: str | None = None, **options: Any) -> AddResult:
        self._write()
        return self.memory.add(messages, user_id=self.user(user_id), **options)

    def update(self, id: str, text: str, *, user_id: str | None = None, **options: Any) -> Record:
        self._write()
        owner = self.get(id, user_id=user_id).user_id
        return self.memory.update(id, text, user_id=owner, **options)

    def delete(self, id: str, *, user_id: str | None = None) -> None:
        self._write()
        owner = self.get(id, user_id=user_id).user_id
        self.memory.delete(id, user_id=owner)

    def forget(self, *, user_id: str | None = None, agent_id: str | None = None,
               session_id: str | None = None) -> int:
        self._write()
        return self.memory.forget(user_id=self.user(user_id), agent_id=agent_id, session_id=session_id)

    def import_(self, path: str | os.PathLike, *, user_id: str | None = None) -> int:
        """Load a cube: into `user_id` (checked) when given, else under the cube's own
        users, which a scoped key must reach, every one, before anything is written."""
        self._write()
        if user_id is not None:
            self.scope.check(user_id)
        elif self.scope.restricted:
            _, items = cube.read(path)
            foreign = sorted({i.record.user_id for i in items if not self.scope.allows(i.record.user_id)})
            if foreign:
                raise PermissionDeniedError(
                    f"the cube holds memories of {len(foreign)} user(s) this API key may not reach "
                    f"(e.g. {foreign[0]!r}); import it with user_id to move them into one user")
        return self.memory.import_(path, user_id=user_id)

    # -- reads -------------------------------------------------------------------------

    def get(self, id: str, *, user_id: str | None = None) -> Record:
        found = self.memory.get(id, user_id=self.scope.narrow(user_id))
        if not self.scope.allows(found.user_id):
            raise NotFoundError(f"no memory with id {id!r}")
        return found

    def history(self, id: str, *, user_id: str | None = None) -> list[Version]:
        owner = self.scope.narrow(user_id)
        if owner is None and self.scope.restricted:
            # A deleted memory has no record left, only its history: ask whose it was.
            owner = self.memory.store.history_owner(id) if isinstance(id, str) else None
            if owner is None or not self.scope.allows(owner):
                self.memory.history(id)  # the library's own error for a malformed id
                raise NotFoundError(f"no memory with id {id!r}")
        return self.memory.history(id, user_id=owner)

    def list(self, *, user_id: str | None = None, **options: Any) -> list[Record]:
        return self.memory.list(user_id=self.user(user_id), **options)

    def search(self, query: str, *, user_id: str | None = None, **options: Any) -> list[Hit]:
        return self.memory.search(query, user_id=self.user(user_id), **options)

    def context(self, query: str, *, user_id: str | None = None, **options: Any) -> str:
        return self.memory.context(query, user_id=self.user(user_id), **options)

    def recall(self, query: str, *, user_id: str | None = None, **options: Any) -> Recall:
        return self.memory.recall(query, user_id=self.user(user_id), **options)

    def export(self, path: str | os.PathLike, *, user_id: str | None = None, **options: Any) -> int:
        return self.memory.export(path, user_id=self.user(user_id), **options)

    def stats(self, *, user_id: str | None = None) -> dict[str, Any]:
        return self.memory.stats(user_id=self._whole_tenant(user_id))

    def jobs(self, *, user_id: str | None = None) -> dict[str, Any]:
        return self.memory.jobs(user_id=self._whole_tenant(user_id))

    # -- any operation of the table ------------------------------------------------------

    def run(self, op: Any, **args: Any) -> Any:
        """`op` (an operations.Operation) with `args` (Memory's own keywords), under this
        caller's key: through the method above of the same name, or, for a row that has
        none, by the row's `target` (a scope: its user checked; a memory: its owner's;
        the tenant: stats-like), writes refused to a read-only key."""
        own = getattr(type(self), op.name, None)
        if callable(own):
            return own(self, **args)
        if op.writes:
            self._write()
        if op.target == "scope":
            args["user_id"] = self.user(args.get("user_id"))
        elif op.target == "tenant":
            args["user_id"] = self._whole_tenant(args.get("user_id"))
        elif op.target == "memory":
            args["user_id"] = self.get(args["id"], user_id=args.get("user_id")).user_id
        else:
            raise PermissionDeniedError(f"{op.name}() acts on the whole store: not through an API key")
        return getattr(self.memory, op.name)(**args)
