"""Schema changes: one runner for every store and key store, on every backend.

A backend's schema is a list of named, ordered migrations, `(name, script)`, numbered
0001, 0002, … with no gap (each store and each key store keeps a list of its own, per
backend). Never edit a released migration: add one. `migrate` applies, inside the
caller's transaction, the migrations a database lacks, in order, each with its record in
`schema_migrations`: what a database lacks commits together with its records, or none
of it does. A database that records migrations this Engram does not know (a newer
Engram wrote it) is refused, naming them, before anything is changed.

The runner sees a connection through a `Target`, a tiny adapter: the connection itself
(sqlite3's or psycopg's; anything with `execute(statement[, params])` answering rows),
its parameter mark, and what must run first in the transaction (on PostgreSQL the
schema's creation). Concurrent openers apply each migration once: on SQLite the caller's
write transaction (BEGIN IMMEDIATE) is the lock; on PostgreSQL postgres_connection's
`migrate_schema` runs the transaction under the advisory lock every Engram schema change
takes. The statements of a script are separated by a semicolon at the end of a line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..clock import Clock, SystemClock, format_ts
from ..errors import ConfigError

Migration = tuple[str, str]  # (name, script)

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+$")
RECORD_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"


class Connection(Protocol):
    def execute(self, statement: Any, params: Any = ..., /) -> Any: ...


@dataclass(frozen=True)
class Target:
    """A connection as the runner sees it: `mark` is its parameter placeholder, `setup`
    the (statement, params) pairs run before the record is read."""

    conn: Connection
    mark: str = "?"
    setup: tuple[tuple[Any, tuple | None], ...] = ()

    def run(self, statement: Any, params: tuple | None = None) -> Any:
        # A script's statement runs without parameters: a '%' in it (LIKE 'x %') is text.
        return self.conn.execute(statement) if params is None else self.conn.execute(statement, params)


def sqlite_target(conn: Connection) -> Target:
    """A sqlite3 connection inside the caller's write transaction (BEGIN IMMEDIATE)."""
    return Target(conn)


def check_numbering(migrations: Sequence[Migration]) -> None:
    """A list's names read 0001_…, 0002_…, … in order, with no gap or repeat: a wrong list
    is a mistake in Engram's code, refused before it reaches a database."""
    for position, (name, _) in enumerate(migrations, start=1):
        match = _NAME.match(name)
        if match is None or int(match.group(1)) != position:
            raise ValueError(f"migration {position} is named {name!r}; expected {position:04d}_<lowercase words>")


def pending(done: set[str] | Sequence[str], migrations: Sequence[Migration], *, owner: str) -> list[Migration]:
    """The migrations a database that records `done` lacks, in order; ConfigError when it
    records migrations that are not in `migrations` (a newer Engram wrote it). `owner`
    names the database in that message."""
    known = {name for name, _ in migrations}
    unknown = sorted(set(done) - known)
    if unknown:
        raise ConfigError(f"{owner} was written by a newer Engram (migrations {unknown}); upgrade engramdb")
    return [(name, script) for name, script in migrations if name not in done]


def applied(target: Target) -> set[str]:
    """The names a database records (its schema_migrations must exist)."""
    return {row[0] for row in target.run("SELECT name FROM schema_migrations").fetchall()}


def statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";\n") if part.strip()]


def migrate(target: Target, migrations: Sequence[Migration], *, owner: str, clock: Clock | None = None) -> list[str]:
    """Apply what the database behind `target` lacks of `migrations`, in the caller's
    transaction, each recorded in schema_migrations with the time it was applied; return
    the names applied (none when it is current). ConfigError, with nothing changed, for a
    database a newer Engram wrote."""
    check_numbering(migrations)
    clock = clock or SystemClock()
    for statement, params in target.setup:
        target.run(statement, params)
    target.run(RECORD_TABLE)
    todo = pending(applied(target), migrations, owner=owner)
    insert = f"INSERT INTO schema_migrations (name, applied_at) VALUES ({target.mark}, {target.mark})"
    for name, script in todo:
        for statement in statements(script):
            target.run(statement)
        target.run(insert, (name, format_ts(clock.now())))
    return [name for name, _ in todo]
