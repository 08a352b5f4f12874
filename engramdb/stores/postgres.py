"""The server store: PostgreSQL with pgvector, for many processes and machines.

Every table lives in one PostgreSQL schema of the store's own (a tenant's store has its
own schema), which is first on each pooled connection's search_path. Keywords in a narrow
table of tsvectors (GIN index; BM25, computed in SQL, over a bounded set of matches);
vectors in a pgvector column with an HNSW index (cosine). Writes commit with
PostgreSQL's synchronous commit: durable when they return.
Concurrent writers lock the rows they change; nothing is read-modify-written unlocked.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np
import psycopg
from pgvector.psycopg.vector import register_vector_info
from psycopg import sql
from psycopg.types import TypeInfo
from psycopg_pool import ConnectionPool, PoolTimeout

from ..clock import SystemClock, format_ts
from ..errors import ConfigError, InvalidInputError, NotFoundError, StorageError, UsageError
from ..keys import content_hash, index_text
from ..lifecycle import engine as lifecycle
from ..types import Record, Scope, ScoredId, Version
from .base import ExportedRecord, Job, JobOutcome, NewRecord
from .inspection_sql import SQLInspection
from .lifecycle_sql import POSTGRES, SQLJobs, SQLLifecycle, exported_links
from .graph_sql import GraphStatements, SQLGraph
from .notes_sql import NoteStatements, SQLNotes
from .thoughts_sql import SQLThoughts
from .filters import Condition, to_postgres
from .keywords import KEYWORD_WINDOW, query_words
from .postgres_connection import MIGRATION_LOCK, check_schema_name, check_url, connect, migrate_schema
from .postgres_connection import driver_message as _message
from .postgres_connection import redact as _redact
from .migrations import pending
from .postgres_schema import MIGRATIONS
from .vitals_sql import SQLVitals, SQLVitalSigns

T = TypeVar("T")

DEFAULT_SCHEMA = "engram"
TEXT_CONFIG = "english"  # stemming like SQLite's porter tokenizer
MAX_HNSW_DIM = 2000  # pgvector cannot index more dimensions of `vector`
RECORD_COLUMNS = (
    "r.rowid, r.id, r.user_id, r.agent_id, r.session_id, r.kind, r.role, r.name, r.text, r.sources, r.metadata, "
    "r.created_at, r.valid_to, r.recorded_at, r.updated_at, r.expired_at"
    ", r.state"
)
VERSION_COLUMNS = "memory_id, version, event, text, content_hash, at, actor, reason"
BIG_SCOPE_TTL_S = 60.0
HNSW_EF_SEARCH = 200  # per connection; a search of another depth sets its own in a transaction
COMMON_TERM_TTL_S = 60.0  # how long a common word's count and a user's row count are reused
WORD_SHARES_TTL_S = 600.0  # how long PostgreSQL's word statistics are reused (ANALYZE renews them)
BM25_K1, BM25_B = 1.2, 0.75  # FTS5's bm25() defaults, so both stores rank alike
# A query's tsquery as an InitPlan: computed once per statement even in a generic plan
# (as a plain call it is computed again for every row the GIN index hands back to recheck).
TSQUERY = f"(SELECT to_tsquery('{TEXT_CONFIG}', %s))"
# A narrowed keyword search ranks this many times the hits of the user's bounded search,
# then narrows them (one pass: ranking every bounded candidate costs the same for any limit).
KEYWORD_OVERFETCH = 4
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def ts_terms(text: str) -> list[str]:
    """The query's words (keywords.query_words) as quoted tsquery terms: a \\w+ word holds
    no quote, backslash or operator, so each is one term."""
    return [f"'{w}'" for w in query_words(text)]


def ts_query(text: str) -> str | None:
    """A to_tsquery expression: the query's words, quoted, ORed."""
    return " | ".join(ts_terms(text)) or None


def bm25_weights(terms: list[str], counts: dict[str, int], rows: int) -> list[float]:
    """Each term's BM25 idf, ln(1 + (N - n + 0.5) / (n + 0.5)), from the user's row count
    N and the term's matches n (FTS5's formula, over the user's rows)."""
    total = max(rows, max(counts.values(), default=0))
    return [math.log(1.0 + (total - counts[t] + 0.5) / (counts[t] + 0.5)) for t in terms]


def _candidates(terms: list[str], counts: dict[str, int]) -> tuple[list[str], int]:
    """The terms whose matches are ranked, and how many matches at most: as SQLite's
    `_keyword_bounded`. Words that match more than KEYWORD_WINDOW of the user's rows
    are dropped from the match (not from the score) if rarer words remain; if none do,
    only the user's newest KEYWORD_WINDOW matches are ranked. So the ranking visits a
    bounded number of small rows, whatever the user's size."""
    rare = [t for t in terms if 0 < counts[t] <= KEYWORD_WINDOW]
    return (rare, KEYWORD_WINDOW * len(rare)) if rare else (terms, KEYWORD_WINDOW)


def _bm25_sql(candidates: str, mark: str) -> str:
    """A statement ranking the rows of `candidates` (rowid, tsv; its parameters follow
    the terms and their weights) by BM25, best first, LIMIT the last parameter; each row
    with `mark` (a condition on `k`). A match counts once per row (chat turns rarely
    repeat a word), and a row's length is its distinct words against the candidates'
    mean, with FTS5's k1 = 1.2 and b = 0.75.

    Run it with prepare=False: which plan is right depends on the values (a rare word:
    its GIN matches, sorted; only common ones: the newest rows by rowid, filtered), and a
    generic plan guesses one for every value."""
    k1, b = BM25_K1, BM25_B
    return (
        f"WITH q AS MATERIALIZED (SELECT to_tsquery('{TEXT_CONFIG}', t) AS tq, w "
        "FROM unnest(%s::text[], %s::float8[]) AS x (t, w)), "
        f"c AS MATERIALIZED ({candidates}), "
        "d AS MATERIALIZED (SELECT greatest(avg(length(tsv)), 1)::float8 AS mean FROM c), "
        "ranked AS (SELECT c.rowid, (SELECT coalesce(sum(q.w), 0) FROM q WHERE c.tsv @@ q.tq) "
        f"* {k1 + 1} / (1 + {k1} * ({1 - b} + {b} * length(c.tsv) / d.mean)) AS s FROM c, d "
        "ORDER BY s DESC, c.rowid DESC LIMIT %s) "
        f"SELECT k.rowid, k.s, {mark} FROM ranked k ORDER BY k.s DESC, k.rowid DESC"
    )


class _Expiring:
    """What the store remembers of counts it would rather not redo: each entry is
    forgotten `ttl` seconds after it was put; a map holding `cap` entries starts over.
    Safe to share between threads (one dict operation at a time, under the GIL)."""

    def __init__(self, ttl: float, cap: int = 100_000) -> None:
        self.ttl, self.cap = ttl, cap
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        found = self._items.get(key)
        return found[1] if found is not None and found[0] > time.monotonic() else None

    def put(self, key: Any, value: Any) -> None:
        if len(self._items) >= self.cap:
            self._items = {}
        self._items[key] = (time.monotonic() + self.ttl, value)

    def drop(self, forget: Callable[[Any], bool]) -> None:
        """Forget the entries whose key `forget` is true of."""
        self._items = {k: v for k, v in list(self._items.items()) if not forget(k)}


class PostgresStore(SQLJobs, SQLThoughts, SQLVitalSigns, SQLInspection, SQLNotes, SQLGraph):
    _vitals_dialect = POSTGRES

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 10, pool_timeout: float = 30.0,
                 connect_timeout: int = 10, ann_threshold: int = 20_000, read_only: bool = False) -> None:
        self.schema = check_schema_name(DEFAULT_SCHEMA if schema is None else schema)
        self.conninfo = url
        self.url = _redact(url)
        self.ann_threshold = ann_threshold
        self.read_only = read_only  # an existing, current store, opened without creating or changing anything
        self._connect_timeout = connect_timeout
        self._closed = False
        self._state_lock = threading.Lock()
        self._indexed_dim: int | None = None
        self._big_scopes = _Expiring(BIG_SCOPE_TTL_S, cap=10_000)  # (where, params) of scopes past ann_threshold
        self._common_terms = _Expiring(COMMON_TERM_TTL_S)  # (user, term) -> its matches, estimated
        self._user_sizes = _Expiring(COMMON_TERM_TTL_S)  # user -> rows
        self._shares = _Expiring(WORD_SHARES_TTL_S)  # None -> {word: share of keywords rows}
        check_url(url)
        vector_schema, self._vector_info = self._bootstrap()
        self._search_path = sql.SQL("SET search_path TO {}, {}").format(
            sql.Identifier(self.schema), sql.Identifier(vector_schema)
        )
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), timeout=pool_timeout, open=False,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout},
            configure=self._configure, check=ConnectionPool.check_connection, name=f"engram-{self.schema}",
        )
        self._pool.open(wait=False)
        self._indexed_dim = self._read_indexed_dim()

    # -- connections and transactions -------------------------------------------------

    def _bootstrap(self) -> tuple[str, TypeInfo]:
        """One direct connection: pgvector present, the schema created and migrated."""
        conn = connect(self.conninfo, connect_timeout=self._connect_timeout)
        try:
            with conn:
                vector_schema = self._find_vector(conn) if self.read_only else self._ensure_vector(conn)
                conn.execute(sql.SQL("SET search_path TO {}, {}").format(
                    sql.Identifier(self.schema), sql.Identifier(vector_schema)
                ))
                if self.read_only:
                    self._check_current(conn)
                else:
                    self._migrate(conn)
                info = TypeInfo.fetch(conn, "vector")
                if info is None:
                    raise StorageError(f"pgvector's vector type is not visible in {self.url}")
                return vector_schema, info
        except psycopg.Error as exc:
            raise StorageError(f"cannot prepare {self.url}: {_message(exc)}") from exc

    def _ensure_vector(self, conn: psycopg.Connection) -> str:
        """The schema holding pgvector, installing the extension if it is missing."""
        find = (
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        )
        row = conn.execute(find).fetchone()
        if row is None:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.errors.InsufficientPrivilege:
                raise ConfigError(
                    f"{self.url} lacks the pgvector extension and this role may not create it; "
                    "run CREATE EXTENSION vector as a superuser"
                ) from None
            except psycopg.errors.FeatureNotSupported as exc:
                raise ConfigError(f"pgvector is not installed on the server of {self.url}: {exc}") from None
            except psycopg.errors.UndefinedFile as exc:
                raise ConfigError(f"pgvector is not installed on the server of {self.url}: {exc}") from None
            row = conn.execute(find).fetchone()
        return row[0]

    def _find_vector(self, conn: psycopg.Connection) -> str:
        row = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                           "WHERE e.extname = 'vector'").fetchone()
        if row is None:
            raise ConfigError(f"no Engram store at {self.url} (pgvector is not even installed)")
        return row[0]

    def _check_current(self, conn: psycopg.Connection) -> None:
        """Read-only opening: the schema must hold a store of exactly this Engram's schema."""
        found = conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.schema_migrations",)).fetchone()[0]
        if found is None:
            raise ConfigError(f"no Engram store in schema {self.schema!r} of {self.url}")
        done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
        missing = pending(done, MIGRATIONS, owner=self.url)
        if missing:
            raise ConfigError(f"{self.url} (schema {self.schema!r}) needs migrations {[m for m, _ in missing]}; "
                              "open it once for writing to apply them")

    def _migrate(self, conn: psycopg.Connection) -> None:
        migrate_schema(conn, self.schema, MIGRATIONS, owner=self.url)

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(self._search_path)
        if self.read_only:  # PostgreSQL itself refuses every write on these connections
            conn.execute("SET default_transaction_read_only = on")
        # Iterative scans, so that a filter does not starve an HNSW search's result;
        # ef_search for the default depth (2 x Config.candidates).
        conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', false), "
                     "set_config('hnsw.ef_search', %s, false)", (str(HNSW_EF_SEARCH),))
        register_vector_info(conn, self._vector_info)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        if self._closed:
            raise UsageError("this Memory is closed")
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StorageError(f"no connection to {self.url}: {exc}") from exc
        except (psycopg.errors.UntranslatableCharacter, psycopg.errors.CharacterNotInRepertoire) as exc:
            raise InvalidInputError(f"PostgreSQL cannot store this text: {_message(exc)}") from None
        except psycopg.Error as exc:
            raise StorageError(f"{self.url} failed: {_message(exc)}") from exc

    def _write(self, work: Callable[[psycopg.Connection], T]) -> T:
        """Run `work` in one transaction; retried (whole) after a deadlock."""
        for attempt in range(5):
            try:
                with self._connection() as conn, conn.transaction():
                    return work(conn)
            except StorageError as exc:
                if isinstance(exc.__cause__, _RETRYABLE) and attempt < 4:
                    continue
                if isinstance(exc.__cause__, psycopg.Error):
                    raise StorageError(f"write to {self.url} failed, nothing was kept: "
                                       f"{_message(exc.__cause__)}") from exc.__cause__
                raise
        raise AssertionError("unreachable")

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection]:
        """A consistent snapshot for several SELECTs."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    def _all(self, query: str | sql.Composable, params: Sequence[Any] = ()) -> list[tuple]:
        with self._connection() as conn:
            return conn.execute(query, list(params)).fetchall()

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self._all("SELECT name FROM schema_migrations ORDER BY name")]

    # -- embedder bookkeeping ---------------------------------------------------------

    def embedder_name(self) -> tuple[str, int] | None:
        rows = self._all("SELECT value FROM meta WHERE key = 'embedder'")
        if not rows:
            return None
        data = json.loads(rows[0][0])
        return data["name"], int(data["dim"])

    def set_embedder_name(self, name: str, dim: int) -> None:
        """Record the embedder and fix the vector column's dimension to it, with an HNSW
        index; vectors of another dimension (another embedder's) are dropped to be re-made."""
        value = json.dumps({"name": name, "dim": dim})
        dim = int(dim)

        def work(conn: psycopg.Connection) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('embedder', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (value,),
            )
            if _column_dim(conn) == dim:
                return
            conn.execute("UPDATE records SET vec = NULL WHERE vec IS NOT NULL AND vector_dims(vec) <> %s", (dim,))
            conn.execute("DROP INDEX IF EXISTS records_vec_hnsw")
            # dim is an int: the one value formatted into DDL (a type modifier takes no parameter)
            conn.execute(f"ALTER TABLE records ALTER COLUMN vec TYPE vector({dim})")
            if dim <= MAX_HNSW_DIM:
                conn.execute("CREATE INDEX records_vec_hnsw ON records USING hnsw (vec vector_cosine_ops)")

        self._write(work)
        self._indexed_dim = self._read_indexed_dim()

    def _read_indexed_dim(self) -> int | None:
        with self._connection() as conn:
            dim = _column_dim(conn)
            found = conn.execute("SELECT to_regclass('records_vec_hnsw') IS NOT NULL").fetchone()[0]
        return dim if found else None

    # -- writes -----------------------------------------------------------------------

    def insert(self, records: Sequence[NewRecord], vectors: np.ndarray, *, actor: str | None,
               enqueue: bool = False) -> list[Record]:
        """Store records; with `enqueue`, also a job to distil them, in the same
        transaction (a crash can lose neither the turns nor their distillation)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)

        def work(conn: psycopg.Connection) -> list[Record]:
            out = self._insert_many(conn, records, vectors, actor)
            if enqueue and records:
                self._lifecycle(conn).enqueue(records[0].scope, [r.id for r in records], at=records[0].recorded_at)
            return out

        return self._write(work)

    def _insert_many(self, conn: psycopg.Connection, records: Sequence[NewRecord], vectors: np.ndarray,
                     actor: str | None) -> list[Record]:
        out = []
        for rec, vec in zip(records, vectors):
            out.append(self._insert_one(conn, rec, vec, rec.recorded_at))
            conn.execute(
                "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, reason) "
                "VALUES (%s, 1, %s, 'add', NULL, %s, %s, %s, %s)",
                (rec.id, rec.scope.user_id, content_hash(rec.text), rec.recorded_at, actor,
                 rec.metadata.get("reason") if rec.kind != "turn" else None),
            )
        return out

    def _insert_one(self, conn: psycopg.Connection, rec: NewRecord, vec: np.ndarray | None,
                    updated_at: str, expired_at: str | None = None) -> Record | None:
        """Insert one record (None if its id exists), returning it as stored, and link it
        to the turns it was derived from."""
        scope = rec.scope
        row = conn.execute(
            "INSERT INTO records AS r (id, user_id, agent_id, session_id, kind, role, name, text, sources, metadata, "
            "created_at, valid_to, recorded_at, updated_at, content_hash, vec, slot, expired_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT (id) DO NOTHING RETURNING {RECORD_COLUMNS}",
            (
                rec.id, scope.user_id, scope.agent_id, scope.session_id, rec.kind, rec.role, rec.name, rec.text,
                json.dumps(rec.sources), json.dumps(rec.metadata), rec.created_at, rec.valid_to, rec.recorded_at,
                updated_at, content_hash(rec.text), _vector(vec), rec.slot, expired_at,
            ),
        ).fetchone()
        if row is None:
            return None
        conn.execute(
            f"INSERT INTO keywords (rowid, user_id, tsv) VALUES (%s, %s, to_tsvector('{TEXT_CONFIG}', %s))",
            (row[0], scope.user_id, index_text(rec.text, rec.name)),
        )
        if rec.derived_from:
            tx = self._lifecycle(conn)
            for turn_id in rec.derived_from:
                tx.link(rec.id, turn_id)
        return _record(row)

    def update(self, id: str, text: str, vector: np.ndarray, *, at: str, actor: str | None,
               reason: str | None, metadata: dict[str, Any] | None = None) -> Record:
        def work(conn: psycopg.Connection) -> Record | None:
            row = conn.execute(
                "SELECT rowid, user_id, text, name, content_hash, kind FROM records WHERE id = %s FOR UPDATE", (id,)
            ).fetchone()
            if row is None:
                return None
            rowid, user_id, old_text, name, old_hash, kind = row
            updated = conn.execute(
                "UPDATE records r SET text = %s, metadata = coalesce(%s::jsonb, r.metadata), updated_at = %s, "
                f"content_hash = %s, vec = %s WHERE r.rowid = %s RETURNING {RECORD_COLUMNS}",
                (text, None if metadata is None else json.dumps(metadata), at, content_hash(text), _vector(vector), rowid),
            ).fetchone()
            conn.execute(
                f"UPDATE keywords SET tsv = to_tsvector('{TEXT_CONFIG}', %s) WHERE rowid = %s",
                (index_text(text, name), rowid),
            )
            last = _last_version(conn, id)
            conn.execute(  # the versions that showed the old text from the record keep it
                "UPDATE versions SET text = %s WHERE memory_id = %s AND text IS NULL AND content_hash = %s",
                (old_text, id, old_hash),
            )
            conn.execute(
                "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, reason) "
                "VALUES (%s, %s, %s, 'update', NULL, %s, %s, %s, %s)",
                (id, last + 1, user_id, content_hash(text), at, actor, reason),
            )
            if old_hash != content_hash(text):  # the graph's edges were read from the old text
                GraphStatements.of(self._lifecycle(conn)).drop([id])
            if kind == "turn" and old_hash != content_hash(text):
                lifecycle.outdate(self._lifecycle(conn), user_id, _record(updated), at=at, actor=actor)
            return _record(updated)

        record = self._write(work)
        if record is None:
            raise NotFoundError(f"no memory with id {id!r}")
        return record

    def delete(self, id: str, *, at: str, actor: str | None) -> bool:
        def work(conn: psycopg.Connection) -> bool:
            row = conn.execute("SELECT user_id FROM records WHERE id = %s FOR UPDATE", (id,)).fetchone()
            if row is None:
                return False
            lifecycle.erase(self._lifecycle(conn), row[0], [id], at=at, actor=actor)
            return True

        return self._write(work)

    def forget(self, scope: Scope) -> int:
        def work(conn: psycopg.Connection) -> int:
            where, params = _scope_sql(scope)
            # The scope's jobs go first: a worker completing one of them either finishes
            # before this (and its memories are erased below) or finds its job gone.
            job_where, job_params = _scope_sql(scope, "jobs")
            conn.execute(f"DELETE FROM jobs WHERE {job_where}", job_params)
            if scope.agent_id is None and scope.session_id is None:
                conn.execute(
                    "DELETE FROM links l USING records r WHERE r.user_id = %s AND (l.src = r.id OR l.dst = r.id)",
                    (scope.user_id,),
                )
                ids = [row[0] for row in conn.execute(f"DELETE FROM records r WHERE {where} RETURNING r.id", params)]
                conn.execute("DELETE FROM versions WHERE user_id = %s", (scope.user_id,))
                NoteStatements.of(self._lifecycle(conn)).forget_user(scope.user_id)
            else:
                ids = [row[0] for row in conn.execute(
                    f"SELECT r.id FROM records r WHERE {where} ORDER BY r.id FOR UPDATE", params)]
                lifecycle.erase(self._lifecycle(conn), scope.user_id, ids, at=_now(), actor=None, tombstone=False)
            return len(ids)

        try:
            return self._write(work)
        finally:
            self._forget_counts(scope.user_id)

    def reset(self) -> None:
        def work(conn: psycopg.Connection) -> None:
            for table in ("jobs", "links", "records", "versions", "notes", "note_queue"):
                conn.execute(f"DELETE FROM {table}")

        try:
            self._write(work)
        finally:
            self._forget_counts(None)

    def _forget_counts(self, user_id: str | None) -> None:
        """Drop what this process remembers of the sizes of a user's (None: every
        user's, and the store's word statistics) rows, after erasing many of them."""
        everyone = user_id is None
        self._big_scopes.drop(lambda key: everyone or user_id in key[1])
        self._common_terms.drop(lambda key: everyone or key[0] == user_id)
        self._user_sizes.drop(lambda key: everyone or key == user_id)
        if everyone:
            self._shares.drop(lambda key: True)

    def compact(self) -> None:
        """VACUUM the tables, so erased rows leave the data files (as far as PostgreSQL
        lets them: old WAL segments and backups are the server's business)."""
        with self._connection() as conn:
            for table in ("records", "keywords", "versions", "links", "jobs", "notes", "note_queue"):
                conn.execute(sql.SQL("VACUUM {}.{}").format(sql.Identifier(self.schema), sql.Identifier(table)))

    # -- derived memories and their jobs ----------------------------------------------
    #
    # The lifecycle's statements are lifecycle_sql's, shared with SQLite; where SQLite's
    # single writer makes an order safe, rows are locked here (the dialect's FOR UPDATE /
    # FOR KEY SHARE): a job's row while it completes (forget deletes jobs first), its
    # turns (against delete), a memory before it is confirmed or reinstated.

    def _lifecycle(self, conn: psycopg.Connection) -> SQLLifecycle:
        return SQLLifecycle(conn, POSTGRES, read=_read_records, remove_rows=_remove_rows)

    def records_by_ids(self, ids: Sequence[str], user_id: str) -> list[Record]:
        if not ids:
            return []
        return self._records_where("r.id = ANY(%s) AND r.user_id = %s", [list(ids), user_id], "ORDER BY r.rowid")

    def slot_memories(self, user_id: str, slots: Sequence[str]) -> list[Record]:
        """Current (not retired) memories of these subject|attribute slots."""
        if not slots:
            return []
        return self._records_where(
            "r.user_id = %s AND r.slot = ANY(%s) AND r.valid_to IS NULL", [user_id, list(slots)], "ORDER BY r.rowid"
        )

    def current_derived(self, user_id: str, content_hashes: Sequence[str]) -> list[Record]:
        """Current derived memories with one of these texts (by content hash)."""
        if not content_hashes:
            return []
        return self._records_where(
            "r.user_id = %s AND r.kind <> 'turn' AND r.content_hash = ANY(%s) AND r.valid_to IS NULL",
            [user_id, list(content_hashes)], "ORDER BY r.rowid",
        )

    def complete_job(self, job: Job, outcome: JobOutcome, *, at: str, actor: str | None) -> list[Record]:
        """Write a job's memories, retire what they supersede, and end the job, in one
        transaction (lifecycle_sql.SQLLifecycle.complete_job)."""
        def insert(conn: psycopg.Connection, records: list[NewRecord], vectors: np.ndarray) -> None:
            self._insert_many(conn, records, vectors, actor)

        def work(conn: psycopg.Connection) -> list[Record]:
            ids = self._lifecycle(conn).complete_job(job, outcome, insert, at=at, actor=actor)
            return _read_records(conn, ids)

        return self._write(work)

    # -- reads ------------------------------------------------------------------------

    def _records_where(self, where: str, params: Sequence[Any], tail: str = "") -> list[Record]:
        rows = self._all(f"SELECT {RECORD_COLUMNS} FROM records r WHERE {where} {tail}", params)
        return [_record(row) for row in rows]

    def get(self, id: str, *, user_id: str | None = None) -> Record | None:
        where, params = "r.id = %s", [id]
        if user_id is not None:
            where, params = where + " AND r.user_id = %s", params + [user_id]
        found = self._records_where(where, params)
        return found[0] if found else None

    def by_rowids(self, rowids: Sequence[int], scope: Scope) -> dict[int, Record]:
        if not rowids:
            return {}
        where, params = _scope_sql(scope)
        return {
            rec.seq: rec for rec in self._records_where(f"r.rowid = ANY(%s) AND {where}", [list(rowids)] + params)
        }

    def list(self, scope: Scope, conditions: list[Condition], limit: int, offset: int) -> list[Record]:
        where, params = _where(scope, conditions)
        return self._records_where(where, params + [limit, offset], "ORDER BY r.created_at, r.rowid LIMIT %s OFFSET %s")

    def count(self, scope: Scope) -> int:
        where, params = _scope_sql(scope)
        return self._all(f"SELECT count(*) FROM records r WHERE {where}", params)[0][0]

    def keyword_search(self, scope: Scope, query: str, conditions: list[Condition], limit: int) -> list[ScoredId]:
        """BM25 over the user's matches (`_bm25_sql`), bounded as SQLite's (`_candidates`)."""
        terms = ts_terms(query)
        if not terms:
            return []
        narrowed = scope.agent_id is not None or scope.session_id is not None or bool(conditions)
        where, params = _where(scope, conditions) if narrowed else ("TRUE", [])
        passes = f"EXISTS (SELECT 1 FROM records r WHERE r.rowid = k.rowid AND {where})" if narrowed else "TRUE"
        with self._connection() as conn:
            counts = self._term_counts(conn, scope.user_id, terms) if len(terms) > 1 else {terms[0]: 1}
            weights = bm25_weights(terms, counts, self._user_rows(conn, scope.user_id))
            match, cap = _candidates(terms, counts)
            # The user's best matches, each marked with whether it passes the narrowing:
            # enough when the narrowing is broad (a search's default conditions: current
            # memories, no summaries), as SQLite's.
            depth = limit * KEYWORD_OVERFETCH if narrowed else limit
            wide = conn.execute(
                _bm25_sql(f"SELECT rowid, tsv FROM keywords WHERE tsv @@ {TSQUERY} "
                          "AND user_id = %s ORDER BY rowid DESC LIMIT %s", passes),
                [terms, weights, " | ".join(match), scope.user_id, cap, depth] + params, prepare=False,
            ).fetchall()
            kept = [(rowid, score) for rowid, score, ok in wide if ok]
            if not narrowed or len(kept) >= limit or len(wide) < depth:
                return _scored(kept[:limit])
            # A narrow scope or filter: every match of the whole query, narrowed by a join.
            return _scored(conn.execute(
                _bm25_sql(f"SELECT k.rowid, k.tsv FROM keywords k JOIN records r ON r.rowid = k.rowid "
                          f"WHERE k.tsv @@ {TSQUERY} AND k.user_id = %s AND {where}", "TRUE"),
                [terms, weights, " | ".join(terms), scope.user_id] + params + [limit], prepare=False,
            ).fetchall())

    def _term_counts(self, conn: psycopg.Connection, user_id: str, terms: list[str]) -> dict[str, int]:
        """How many of the user's rows match each term. A term is counted up to
        KEYWORD_WINDOW + 1 rows (a bounded cost). One past that is common: its count is
        estimated from PostgreSQL's own statistics (the share of rows holding the word,
        `_word_shares`, times the user's rows), never counted in full, and remembered
        for COMMON_TERM_TTL_S, so a common word costs nothing on later searches."""
        counts = {}
        for term in terms:
            known = self._common_terms.get((user_id, term))
            if known is not None:
                counts[term] = known
        unknown = [t for t in terms if t not in counts]
        if not unknown:
            return counts
        rows = conn.execute(
            f"SELECT to_tsquery('{TEXT_CONFIG}', t)::text, (SELECT count(*) FROM (SELECT 1 FROM keywords "
            f"WHERE tsv @@ to_tsquery('{TEXT_CONFIG}', t) AND user_id = %s LIMIT %s) m) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS w (t, i) ORDER BY i",
            (user_id, KEYWORD_WINDOW + 1, unknown),
        ).fetchall()
        common = [(term, lexeme.strip("'"), n) for term, (lexeme, n) in zip(unknown, rows) if n > KEYWORD_WINDOW]
        counts.update((term, n) for term, (_, n) in zip(unknown, rows))
        if common:
            shares, total = self._word_shares(conn), self._user_rows(conn, user_id)
            for term, lexeme, n in common:
                counts[term] = min(total, max(n, round(shares.get(lexeme, 0.0) * total)))
                self._common_terms.put((user_id, term), counts[term])
        return counts

    def _word_shares(self, conn: psycopg.Connection) -> dict[str, float]:
        """The share of `keywords` rows holding each of the store's most common words,
        from the statistics ANALYZE keeps (pg_stats.most_common_elems); remembered for
        WORD_SHARES_TTL_S. Empty before the first ANALYZE."""
        shares = self._shares.get(None)
        if shares is None:
            row = conn.execute(
                "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
                "WHERE schemaname = current_schema() AND tablename = 'keywords' AND attname = 'tsv'"
            ).fetchone()
            shares = dict(zip(row[0], row[1])) if row is not None and row[0] is not None else {}
            self._shares.put(None, shares)
        return shares

    def _user_rows(self, conn: psycopg.Connection, user_id: str) -> int:
        """The user's row count (BM25's N), remembered for COMMON_TERM_TTL_S."""
        n = self._user_sizes.get(user_id)
        if n is None:
            n = conn.execute("SELECT count(*) FROM records WHERE user_id = %s", (user_id,)).fetchone()[0]
            self._user_sizes.put(user_id, n)
        return n

    def _is_big(self, conn: psycopg.Connection, where: str, params: list[Any]) -> bool:
        """Whether the scope holds more than `ann_threshold` vectors. Counting them costs
        ~20 ms at the threshold (a heap visit per row), so a scope found big is taken as
        big for BIG_SCOPE_TTL_S without counting again: scopes rarely shrink, and a stale
        answer only picks the index scan for a scope that has just been cut down."""
        key = (where, tuple(params))
        if self._big_scopes.get(key):
            return True
        big = conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM records r WHERE {where} LIMIT %s) t",
            params + [self.ann_threshold + 1],
        ).fetchone()[0] > self.ann_threshold
        if big:
            self._big_scopes.put(key, True)
        return big

    def vector_search(self, scope: Scope, vector: np.ndarray, conditions: list[Condition], limit: int) -> list[ScoredId]:
        """Exact cosine over the scope while it holds at most `ann_threshold` vectors
        (an index scan with a filter can miss a small scope's rows); past it, the HNSW
        index with pgvector's iterative scan, so a filter does not starve the result."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        where, params = _where(scope, conditions)
        where += " AND r.vec IS NOT NULL"
        with self._connection() as conn:
            if not (self._indexed_dim == len(vector) and self._is_big(conn, where, params)):
                return _scored(conn.execute(
                    f"WITH c AS MATERIALIZED (SELECT r.rowid, r.vec FROM records r WHERE {where}) "
                    "SELECT rowid, 1 - (vec <=> %s) AS s FROM c ORDER BY vec <=> %s, rowid LIMIT %s",
                    params + [vector, vector, limit],
                ).fetchall())
            query = (f"SELECT rowid, 1 - d FROM (SELECT r.rowid, r.vec <=> %s AS d FROM records r WHERE {where} "
                     "ORDER BY r.vec <=> %s LIMIT %s) t ORDER BY d, rowid")
            args = [vector] + params + [vector, limit]
            ef = min(1000, max(64, 2 * limit))
            if ef == HNSW_EF_SEARCH:  # the connection's own setting (_configure): one statement
                return _scored(conn.execute(query, args).fetchall())
            with conn.transaction():
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
                return _scored(conn.execute(query, args).fetchall())

    def vector_search_many(self, scope: Scope, vectors: np.ndarray, conditions: list[Condition],
                           limit: int) -> list[list[ScoredId]]:
        """`vector_search` for each row of `vectors` (pgvector answers one query a statement)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(vectors) == 0:
            return []
        return [self.vector_search(scope, vector, conditions, limit) for vector in vectors.reshape(len(vectors), -1)]

    def history(self, id: str) -> list[Version]:
        with self._read() as conn:
            return _histories(conn, [id]).get(id, [])

    def history_owner(self, id: str) -> str | None:
        rows = self._all("SELECT user_id FROM versions WHERE memory_id = %s LIMIT 1", (id,))
        return rows[0][0] if rows else None

    # -- export / import --------------------------------------------------------------

    def export(self, scope: Scope) -> Iterator[ExportedRecord]:
        where, params = _scope_sql(scope)
        last = 0
        while True:
            with self._read() as conn:
                rows = conn.execute(
                    f"SELECT {RECORD_COLUMNS}, r.vec FROM records r WHERE {where} AND r.rowid > %s "
                    "ORDER BY r.rowid LIMIT 500",
                    params + [last],
                ).fetchall()
                histories = _histories(conn, [row[1] for row in rows])
                vitals = SQLVitals(conn, POSTGRES).vitals([row[1] for row in rows])
            if not rows:
                return
            for row in rows:
                record, vec = _record(row[:-1]), row[-1]
                yield ExportedRecord(
                    record=record,
                    vector=None if vec is None else np.asarray(vec.to_numpy(), dtype=np.float32),
                    versions=histories.get(record.id, []),
                    vitals=vitals.get(record.id),
                )
            last = rows[-1][0]

    def import_records(self, items: Sequence[ExportedRecord], vectors: np.ndarray) -> int:
        def work(conn: psycopg.Connection) -> int:
            written = 0
            for item, vec in zip(items, vectors):
                rec = item.record
                new = NewRecord(
                    id=rec.id, scope=Scope(rec.user_id, rec.agent_id, rec.session_id), kind=rec.kind,
                    text=rec.text, created_at=rec.created_at, recorded_at=rec.recorded_at, role=rec.role,
                    name=rec.name, sources=rec.sources, metadata=rec.metadata, valid_to=rec.valid_to,
                )
                if self._insert_one(conn, new, vec, rec.updated_at, rec.expired_at) is None:
                    continue  # that id exists: skipped
                if rec.state != "active":
                    conn.execute("UPDATE records SET state = %s WHERE id = %s", (rec.state, rec.id))
                if item.vitals is not None:
                    SQLVitals(conn, POSTGRES).write([item.vitals])
                conn.execute("DELETE FROM versions WHERE memory_id = %s", (rec.id,))
                versions = item.versions or [
                    Version(rec.id, 1, "add", None, content_hash(rec.text), rec.recorded_at, None, None)
                ]
                _insert_versions(conn, rec.user_id, versions, keep_last_text=False)
                written += 1
            return written

        return self._write(work)

    def export_derived(self, user_id: str) -> dict[str, Any]:
        """What a user's records do not carry of their distillation, for moving a whole
        store: each derived memory's slot, the turns it came from (with the sources it
        took from each), and the queued jobs. Plain JSON values, the same from every store."""
        with self._read() as conn:
            slots = dict(conn.execute(
                "SELECT id, slot FROM records WHERE user_id = %s AND slot IS NOT NULL ORDER BY rowid", (user_id,)
            ).fetchall())
            links = [list(row) for row in conn.execute(
                "SELECT l.src, l.type, l.dst, l.sources, l.suffices FROM links l JOIN records r ON r.id = l.dst "
                "WHERE r.user_id = %s ORDER BY l.src, l.type, l.dst", (user_id,)
            )]
            jobs = self._lifecycle(conn).export_jobs(user_id)
            notes = NoteStatements.of(self._lifecycle(conn)).export(user_id)
            graph = GraphStatements.of(self._lifecycle(conn)).export(user_id)
        return {"slots": slots, "links": links, "jobs": jobs, **notes, "graph_mentions": graph}

    def import_derived(self, user_id: str, data: dict[str, Any]) -> None:
        """Write what `export_derived` gave, after the user's records: slots and links of
        the memories that are here; the jobs only if the user has none here yet (so that
        a re-run copies them once)."""
        def work(conn: psycopg.Connection) -> None:
            with conn.cursor() as cur:
                cur.executemany(
                    "UPDATE records SET slot = %s WHERE id = %s AND user_id = %s",
                    [(slot, memory_id, user_id) for memory_id, slot in data.get("slots", {}).items()],
                )
                cur.executemany(
                    "INSERT INTO links (src, type, dst, sources, suffices) SELECT %s, %s, %s, %s::jsonb, %s "
                    "WHERE EXISTS (SELECT 1 FROM records WHERE id = %s AND user_id = %s) ON CONFLICT DO NOTHING",
                    [(src, type, dst, json.dumps(sources), int(suffices), dst, user_id)
                     for src, type, dst, sources, suffices in exported_links(data)],
                )
            self._lifecycle(conn).import_jobs(user_id, data.get("jobs", []))
            NoteStatements.of(self._lifecycle(conn)).import_(user_id, data)
            GraphStatements.of(self._lifecycle(conn)).import_(user_id, data.get("graph_mentions", []))

        self._write(work)

    def users(self) -> list[str]:
        """Every user with records or history, for moving a whole store."""
        rows = self._all("SELECT user_id FROM records UNION SELECT user_id FROM versions ORDER BY 1")
        return [row[0] for row in rows]

    def tombstones(self) -> Iterator[tuple[str, list[Version]]]:
        """The histories left by deleted memories (hashes only), as (user_id, versions)."""
        last = ""
        while True:
            with self._read() as conn:
                ids = [row[0] for row in conn.execute(
                    "SELECT DISTINCT v.memory_id FROM versions v WHERE v.memory_id > %s "
                    "AND NOT EXISTS (SELECT 1 FROM records r WHERE r.id = v.memory_id) ORDER BY 1 LIMIT 500",
                    (last,),
                )]
                owners = dict(conn.execute(
                    "SELECT DISTINCT memory_id, user_id FROM versions WHERE memory_id = ANY(%s)", (ids,)
                ).fetchall())
                histories = _histories(conn, ids)
            if not ids:
                return
            for memory_id in ids:
                yield owners[memory_id], histories[memory_id]
            last = ids[-1]

    def import_tombstones(self, items: Sequence[tuple[str, list[Version]]]) -> int:
        """Write deleted memories' histories; ids with any history or record are skipped."""
        def work(conn: psycopg.Connection) -> int:
            written = 0
            for user_id, versions in items:
                memory_id = versions[0].memory_id
                if conn.execute(
                    "SELECT 1 FROM versions WHERE memory_id = %s UNION ALL SELECT 1 FROM records WHERE id = %s",
                    (memory_id, memory_id),
                ).fetchone():
                    continue
                _insert_versions(conn, user_id, versions, keep_last_text=True)
                written += 1
            return written

        return self._write(work)

    # -- re-embedding -----------------------------------------------------------------

    def missing_vectors(self, limit: int) -> list[tuple[int, str]]:
        """Records without a vector, with the text to embed them under."""
        rows = self._all("SELECT rowid, text, name FROM records WHERE vec IS NULL ORDER BY rowid LIMIT %s", (limit,))
        return [(rowid, index_text(text, name)) for rowid, text, name in rows]

    def set_vectors(self, rowids: Sequence[int], vectors: np.ndarray) -> None:
        def work(conn: psycopg.Connection) -> None:
            for rowid, vec in zip(rowids, vectors):
                conn.execute("UPDATE records SET vec = %s WHERE rowid = %s", (_vector(vec), int(rowid)))

        self._write(work)

    def clear_vectors(self) -> None:
        self._write(lambda conn: conn.execute("UPDATE records SET vec = NULL WHERE vec IS NOT NULL"))

    # -- stats and lifecycle ----------------------------------------------------------

    def stats(self, user_id: str | None = None) -> dict[str, Any]:
        where, params = ("WHERE user_id = %s", [user_id]) if user_id is not None else ("", [])
        with self._read() as conn:
            kinds = dict(conn.execute(f"SELECT kind, count(*) FROM records {where} GROUP BY kind", params).fetchall())
            sessions = conn.execute(
                f"SELECT count(DISTINCT coalesce(session_id, '')) FROM records {where}", params
            ).fetchone()[0]
            out: dict[str, Any] = {
                "store": self.url,
                "pg_schema": self.schema,
                "records": sum(kinds.values()),
                "by_kind": kinds,
                "sessions": sessions,
                "schema": [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")],
                "by_state": dict(conn.execute(f"SELECT state, count(*) FROM records {where} GROUP BY state",
                                              params).fetchall()),
            }
            if user_id is None:
                out["users"] = conn.execute("SELECT count(DISTINCT user_id) FROM records").fetchone()[0]
                out["table_bytes"] = conn.execute(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                    (self.schema,),
                ).fetchone()[0]
            row = conn.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
        out["embedder"] = json.loads(row[0])["name"] if row else None
        return out

    def flush(self, timeout: float | None = None) -> bool:
        """Nothing runs in the background: every write is committed when it returns."""
        return True

    def close(self) -> None:
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        self._pool.close()


def _column_dim(conn: psycopg.Connection) -> int | None:
    """The vector column's fixed dimension, None while it has none."""
    typmod = conn.execute(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'records'::regclass AND attname = 'vec'"
    ).fetchone()[0]
    return typmod if typmod > 0 else None


def _last_version(conn: psycopg.Connection, id: str) -> int:
    return conn.execute("SELECT coalesce(max(version), 0) FROM versions WHERE memory_id = %s", (id,)).fetchone()[0]


def _now() -> str:
    return format_ts(SystemClock().now())


def _read_records(conn: psycopg.Connection, ids: Sequence[str]) -> list[Record]:
    if not ids:
        return []
    return [_record(row) for row in conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM records r WHERE r.id = ANY(%s) ORDER BY r.rowid", (list(ids),))]


def _remove_rows(conn: psycopg.Connection, ids: list[str]) -> None:
    """Remove records' rows (their keywords go with them: ON DELETE CASCADE; the vector is
    in the row); the lifecycle does their history and links."""
    if ids:
        conn.execute("DELETE FROM records WHERE id = ANY(%s)", (list(ids),))


def _histories(conn: psycopg.Connection, ids: list[str]) -> dict[str, list[Version]]:
    """Versions of these memories, oldest first. Versions are written without text: those
    with the live text show it (a retired memory keeps its text); older ones show what
    update() kept of theirs."""
    if not ids:
        return {}
    rows = conn.execute(
        f"SELECT {VERSION_COLUMNS} FROM versions WHERE memory_id = ANY(%s) ORDER BY memory_id, version", (ids,)
    ).fetchall()
    current = {id: (text, digest) for id, text, digest in conn.execute(
        "SELECT id, text, content_hash FROM records WHERE id = ANY(%s)", (ids,))}
    out: dict[str, list[Version]] = {}
    for row in rows:
        version = Version(*row)
        live = current.get(version.memory_id)
        if live is not None and version.content_hash == live[1]:
            version = replace(version, text=live[0])
        out.setdefault(version.memory_id, []).append(version)
    return out


def _insert_versions(conn: psycopg.Connection, user_id: str, versions: list[Version], *, keep_last_text: bool) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, reason) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (v.memory_id, v.version, user_id, v.event, v.text if keep_last_text or v is not versions[-1] else None,
                 v.content_hash, v.at, v.actor, v.reason)
                for v in versions
            ],
        )


def _vector(vec: np.ndarray | None) -> np.ndarray | None:
    """A vector to store; None (or NaN: "no vector", as an import may carry) stores NULL."""
    if vec is None:
        return None
    vec = np.ascontiguousarray(vec, dtype=np.float32).reshape(-1)
    return None if np.isnan(vec).any() else vec


def _scope_sql(scope: Scope, alias: str = "r") -> tuple[str, list[Any]]:
    parts, params = [f"{alias}.user_id = %s"], [scope.user_id]
    if scope.agent_id is not None:
        parts.append(f"{alias}.agent_id = %s")
        params.append(scope.agent_id)
    if scope.session_id is not None:
        parts.append(f"{alias}.session_id = %s")
        params.append(scope.session_id)
    return " AND ".join(parts), params


def _where(scope: Scope, conditions: list[Condition]) -> tuple[str, list[Any]]:
    where, params = _scope_sql(scope)
    if conditions:
        extra, extra_params = to_postgres(conditions)
        where, params = f"{where} AND {extra}", params + extra_params
    return where, params


def _scored(rows: Sequence[tuple]) -> list[ScoredId]:
    """(rowid, score, …) rows as ScoredIds."""
    return [ScoredId(row[0], float(row[1])) for row in rows]


def _record(row: tuple) -> Record:
    (rowid, id, user_id, agent_id, session_id, kind, role, name, text, sources, metadata,
     created_at, valid_to, recorded_at, updated_at, expired_at) = row[:16]
    return Record(
        id=id, user_id=user_id, agent_id=agent_id, session_id=session_id, kind=kind, text=text, role=role,
        name=name, sources=sources, metadata=metadata, created_at=created_at, valid_to=valid_to,
        recorded_at=recorded_at, updated_at=updated_at, seq=rowid, expired_at=expired_at, state=row[16],
    )
