"""What every PostgreSQL connection of Engram's shares, the store's and the key store's:
URLs checked and shown without their password, the driver's messages cut to one line,
schema names checked, and schema changes under the lock every Engram schema change takes
(migrations applied by the one runner). It imports psycopg alone (no NumPy, no pgvector)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg import sql

from ..clock import Clock
from ..errors import ConfigError, StorageError
from .migrations import Migration, Target, migrate

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# One advisory lock serialises schema changes (migrations, CREATE EXTENSION, the vector
# column's dimension) across every process and schema of a database.
MIGRATION_LOCK = 0x656E6772616D  # "engram"


def check_schema_name(schema: str) -> str:
    if not isinstance(schema, str) or not SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"a PostgreSQL schema name must be lowercase letters, digits and _ (at most 63), got {schema!r}"
        )
    return schema


def redact(url: str) -> str:
    """The URL without its password, for messages and `store.url`."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def driver_message(exc: BaseException) -> str:
    """The first line of a driver error (psycopg's messages run on with context)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_url(url: str) -> None:
    """ConfigError for a URL psycopg cannot read or whose port is no number (shown redacted)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"bad PostgreSQL URL {redact(url)!r}: {exc}") from None
    if not all(part.strip().isdigit() for part in str(params.get("port", "5432")).split(",")):
        raise ConfigError(f"bad PostgreSQL URL {redact(url)!r}: the port must be a number")


def connect(url: str, *, connect_timeout: int) -> psycopg.Connection:
    """One direct autocommit connection (for schema work before a pool opens)."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"bad PostgreSQL URL {redact(url)!r}: {exc}") from None
    except psycopg.Error as exc:
        raise StorageError(f"cannot connect to {redact(url)}: {driver_message(exc)}") from exc


@contextmanager
def schema_change(conn: psycopg.Connection) -> Iterator[None]:
    """One transaction on `conn` (an autocommit connection) under the lock every Engram
    schema change takes. The lock is taken before the transaction begins, not inside it:
    PostgreSQL refreshes a session's catalog caches as a transaction starts, not when a
    lock is granted, so a transaction that waited inside for the lock could still believe
    a schema missing that the lock's previous holder had just made (and CREATE SCHEMA IF
    NOT EXISTS would fail on it). The lock ends with the session if unlocking cannot."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        with conn.transaction():
            yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def migrate_schema(conn: psycopg.Connection, schema: str, migrations: Sequence[Migration], *, owner: str,
                   clock: Clock | None = None) -> list[str]:
    """Create `schema` if it is missing and apply the `migrations` it lacks (migrations.migrate)
    in one schema change on `conn`, whose search_path puts `schema` first; the names applied."""
    create = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(check_schema_name(schema)))
    with schema_change(conn):
        return migrate(Target(conn, "%s", ((create, None),)), migrations, owner=owner, clock=clock)
