"""The embedded store: one SQLite file in WAL mode.

One writer at a time (BEGIN IMMEDIATE, retried past the busy timeout), many readers,
one connection per thread. Keywords in FTS5 (BM25); vectors as float32 BLOBs in the
same file, searched through the in-process mirror of `vectors.py`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote
from typing import Any, TypeVar

import numpy as np

from ..clock import SystemClock, format_ts
from ..errors import ConfigError, StorageError, UsageError
from ..keys import content_hash, index_text
from ..lifecycle import engine as lifecycle
from ..types import Record, Scope, ScoredId, Version
from .base import ExportedRecord, Job, JobOutcome, NewRecord
from .inspection_sql import SQLInspection
from .lifecycle_sql import SQLITE, SQLJobs, SQLLifecycle, exported_links
from .graph_sql import GraphStatements, SQLGraph
from .notes_sql import NoteStatements, SQLNotes
from .thoughts_sql import SQLThoughts
from .filters import Condition, to_sql
from .keywords import KEYWORD_WINDOW, query_words
from .migrations import applied, migrate, pending, sqlite_target
from .sqlite_schema import MIGRATIONS
from .vitals_sql import SQLVitals, SQLVitalSigns
from .vectors import Delta, ScopeState, VectorCache

T = TypeVar("T")

RECORD_COLUMNS = (
    "rowid, id, user_id, agent_id, session_id, kind, role, name, text, sources, metadata, "
    "created_at, valid_to, recorded_at, updated_at, expired_at"
    ", state"
)


def user_key(user_id: str) -> str:
    """The token that names a user inside indexes (FTS owner column, vector mirrors)."""
    return "u" + hashlib.sha256(user_id.encode()).hexdigest()[:32]


def fts_terms(text: str) -> list[str]:
    """The query's words (keywords.query_words) as quoted FTS5 phrases."""
    return ['"' + w.replace('"', '""') + '"' for w in query_words(text)]


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression: the query's words, quoted, ORed; stopwords dropped."""
    return " OR ".join(fts_terms(text)) or None


# A narrowed search first asks the unnarrowed one for this many times the hits (a little
# more: the default narrowing, current memories without summaries, drops few; then 4x).
OVERFETCH = (1.25, 4)


class SQLiteStore(SQLJobs, SQLThoughts, SQLVitalSigns, SQLInspection, SQLNotes, SQLGraph):
    _vitals_dialect = SQLITE

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 60_000, ann_threshold: int = 20_000,
                 read_only: bool = False) -> None:
        """Open (or create) the store at `path`. `read_only` opens an existing store with
        connections that cannot write: nothing is created, migrated or changed. Either way
        a file that is not Engram's (another program's database) is refused untouched."""
        self.path = Path(path).expanduser()
        self.read_only = read_only
        self.url = f"sqlite:///{self.path}"
        self.busy_timeout_ms = busy_timeout_ms
        self.ann_threshold = ann_threshold
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._conn_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one writer per process; SQLite serialises processes
        self._closed = False
        self._vectors: VectorCache | None = None
        if read_only:
            if not self.path.is_file():
                raise ConfigError(f"no Engram store at {self.path} (reading never creates one: check the path)")
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the directory for {self.path}: {exc}") from exc
            if not os.access(self.path.parent, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK)):
                raise ConfigError(f"{self.path} is read-only (a read-only file system or no write permission): "
                                  "open it with read_only=True to read it")
        self._refuse_foreign_file()
        if read_only:
            self._check_schema()
        else:
            self._migrate()

    # -- connections and transactions -------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise UsageError("this Memory is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conn_lock:
                self._connections.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        """A configured connection. Switching to WAL, or reading the WAL index while
        another connection initialises it, can answer SQLITE_BUSY without waiting on the
        busy handler, so that is retried here until the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.005
        while True:
            conn = None
            try:
                if self.read_only:
                    conn = self._open_read_only()
                    conn.execute("PRAGMA query_only = ON")
                else:
                    conn = sqlite3.connect(
                        self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
                    )
                conn.create_function("engram_user_key", 1, user_key, deterministic=True)
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                if not self.read_only:
                    if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                        raise StorageError(f"cannot put {self.path} in WAL mode")
                    conn.execute("PRAGMA synchronous = FULL")  # durable when add() returns
                    conn.execute("PRAGMA secure_delete = ON")  # deleted text is overwritten
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA cache_size = -65536")
                conn.execute("PRAGMA temp_store = MEMORY")
                return conn
            except sqlite3.DatabaseError as exc:
                if conn is not None:
                    conn.close()
                if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
                    continue
                raise StorageError(f"cannot open {self.path}: {exc}") from exc

    def _open_read_only(self, *, inspect: bool = False) -> sqlite3.Connection:
        """A connection that cannot write (SQLite's mode=ro). Reading a WAL database needs
        its -shm index beside it, which SQLite creates when the folder can be written. On
        read-only media it cannot: then, if no -wal holds changes not yet in the file, the
        file is complete and is read as immutable. `inspect` (a first look at a file that
        may be another program's) reads a WAL file without a -wal as immutable at once,
        so that not even an empty -wal or -shm appears beside it."""
        wal = Path(f"{self.path}-wal")
        uri = f"file:{quote(str(self.path))}?mode=ro"
        immutable = inspect and (_header(self.path) or b"")[18:19] == b"\x02" and not wal.exists()
        try:
            return self._probe(uri + ("&immutable=1" if immutable else ""))
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc) or immutable or os.access(self.path.parent, os.W_OK):
                raise
            if wal.exists() and wal.stat().st_size > 0:
                raise StorageError(
                    f"{self.path} is on read-only storage and its write-ahead log ({wal.name}) holds changes not yet "
                    f"in the file; reading them needs {self.path.name}-shm written beside it. Copy the store and its "
                    "-wal to writable storage, or open it once where it can be written"
                ) from exc
        return self._probe(uri + "&immutable=1")

    def _probe(self, uri: str) -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file and its WAL index
        except BaseException:
            conn.close()
            raise
        return conn

    def _refuse_foreign_file(self) -> None:
        """Look at an existing file before any connection that could write to it (even
        switching to WAL rewrites its header): bytes that are no SQLite database are a
        StorageError, another program's database a ConfigError, and neither is changed."""
        header = _header(self.path)
        if header is None:
            return  # a new store, made by _migrate
        if not header:
            if self.read_only:
                raise ConfigError(f"{self.path} is empty: not an Engram store yet")
            return
        if not header.startswith(b"SQLite format 3\x00"):
            raise StorageError(f"{self.path} is not an Engram database or is corrupt: it is not a SQLite file")
        try:
            conn = self._open_read_only(inspect=True)
            try:
                why = _not_engram(conn)
                empty = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                return  # a writer is creating it; _migrate looks again inside its transaction
            raise StorageError(f"{self.path} is not an Engram database or is corrupt: {exc}") from exc
        if why is not None:
            raise ConfigError(f"{self.path} is not an Engram store: {why}; Engram leaves it untouched")
        if empty and self.read_only:
            raise ConfigError(f"{self.path} is an empty database: not an Engram store yet")

    def _check_schema(self) -> None:
        """A store opened read-only cannot be migrated: it must be at this Engram's schema."""
        with self._read() as conn:
            done = applied(sqlite_target(conn))
        missing = [name for name, _ in pending(done, MIGRATIONS, owner=str(self.path))]
        if missing:
            raise ConfigError(f"{self.path} was written by an older Engram (it lacks {', '.join(missing)}); open it "
                              "once for writing to upgrade it, then read it")

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one IMMEDIATE transaction; retry while another process writes."""
        conn = self._conn()
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.005
        with self._write_lock:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() > deadline:
                        raise StorageError(f"cannot start a write on {self.path}: {exc}") from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
            try:
                result = work(conn)
                conn.execute("COMMIT")
                return result
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError):
                    raise StorageError(f"write to {self.path} failed, nothing was kept: {exc}") from exc
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs."""
        conn = self._conn()
        try:
            conn.execute("BEGIN")
            yield conn
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"read from {self.path} failed: {exc}") from exc
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _migrate(self) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            why = _not_engram(conn)  # again, inside the transaction: nothing can change in between
            if why is not None:
                raise ConfigError(f"{self.path} is not an Engram store: {why}; Engram leaves it untouched")
            migrate(sqlite_target(conn), MIGRATIONS, owner=str(self.path))

        try:
            self._write(apply)
        except StorageError as exc:
            if "file is not a database" in str(exc) or "malformed" in str(exc):
                raise StorageError(f"{self.path} is not an Engram database or is corrupt: {exc}") from exc
            if "readonly" in str(exc):
                raise ConfigError(f"{self.path} is read-only: {exc}; open it with read_only=True to read it") from exc
            raise

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self._conn().execute("SELECT name FROM schema_migrations ORDER BY name")]

    # -- embedder bookkeeping ---------------------------------------------------------

    def embedder_name(self) -> tuple[str, int] | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return data["name"], int(data["dim"])

    def set_embedder_name(self, name: str, dim: int) -> None:
        value = json.dumps({"name": name, "dim": dim})
        self._write(lambda c: c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('embedder', ?)", (value,)))
        self._vectors = None

    def _cache(self, dim: int) -> VectorCache:
        if self._vectors is None or self._vectors.dim != dim:
            saved = None if self.read_only else self.path.with_name(self.path.name + ".vectors")  # reads save none
            self._vectors = VectorCache(dim, self.ann_threshold, saved)
        return self._vectors

    # -- writes -----------------------------------------------------------------------

    def insert(self, records: Sequence[NewRecord], vectors: np.ndarray, *, actor: str | None,
               enqueue: bool = False) -> list[Record]:
        """Store records; with `enqueue`, also a job to distil them, in the same
        transaction (a crash can lose neither the turns nor their distillation)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)

        def work(conn: sqlite3.Connection) -> list[int]:
            rowids = self._insert_many(conn, records, vectors, actor)
            if enqueue and records:
                self._lifecycle(conn).enqueue(records[0].scope, [r.id for r in records], at=records[0].recorded_at)
            return rowids

        return self._by_rowid_order(self._write(work))

    def _insert_many(self, conn: sqlite3.Connection, records: Sequence[NewRecord], vectors: np.ndarray,
                     actor: str | None) -> list[int]:
        rowids = []
        for rec, vec in zip(records, vectors):
            rowids.append(self._insert_one(conn, rec, vec))
            conn.execute(
                "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, reason) "
                "VALUES (?, 1, ?, 'add', NULL, ?, ?, ?, ?)",
                (rec.id, rec.scope.user_id, content_hash(rec.text), rec.recorded_at, actor,
                 rec.metadata.get("reason") if rec.kind != "turn" else None),
            )
        return rowids

    def _by_rowid_order(self, rowids: list[int]) -> list[Record]:
        if not rowids:
            return []
        found = self._records_where(f"r.rowid IN ({','.join('?' * len(rowids))})", rowids)
        by_rowid = {rowid: rec for rowid, rec in found}
        return [by_rowid[rowid] for rowid in rowids]

    def _insert_one(self, conn: sqlite3.Connection, rec: NewRecord, vec: np.ndarray) -> int:
        scope = rec.scope
        cursor = conn.execute(
            "INSERT INTO records (id, user_id, agent_id, session_id, kind, role, name, text, sources, metadata, "
            "created_at, valid_to, recorded_at, updated_at, content_hash, slot) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.id, scope.user_id, scope.agent_id, scope.session_id, rec.kind, rec.role, rec.name, rec.text,
                json.dumps(rec.sources), json.dumps(rec.metadata), rec.created_at, rec.valid_to,
                rec.recorded_at, rec.recorded_at, content_hash(rec.text), rec.slot,
            ),
        )
        rowid = cursor.lastrowid
        if rec.derived_from:
            tx = self._lifecycle(conn)
            for turn_id in rec.derived_from:
                tx.link(rec.id, turn_id)
        key = user_key(scope.user_id)
        conn.execute(
            "INSERT INTO fts (rowid, text, owner) VALUES (?, ?, ?)", (rowid, index_text(rec.text, rec.name), key)
        )
        conn.execute("INSERT OR IGNORE INTO scopes (user_key) VALUES (?)", (key,))
        vec = np.ascontiguousarray(vec, dtype=np.float32)
        if not np.isnan(vec).any():  # NaN: "no vector" (an import of a record that had none)
            conn.execute(
                "INSERT INTO vectors (record_rowid, user_key, vec) VALUES (?, ?, ?)", (rowid, key, vec.tobytes())
            )
        return rowid

    def update(self, id: str, text: str, vector: np.ndarray, *, at: str, actor: str | None,
               reason: str | None, metadata: dict[str, Any] | None = None) -> Record:
        def work(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT rowid, user_id, text, metadata, name, content_hash, kind FROM records WHERE id = ?", (id,)
            ).fetchone()
            if row is None:
                return None
            rowid, user_id, old_text, old_meta, name, old_hash, kind = row
            key = user_key(user_id)
            merged = json.loads(old_meta) if metadata is None else metadata
            conn.execute(
                "UPDATE records SET text = ?, metadata = ?, updated_at = ?, content_hash = ? WHERE rowid = ?",
                (text, json.dumps(merged), at, content_hash(text), rowid),
            )
            conn.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))
            conn.execute("INSERT INTO fts (rowid, text, owner) VALUES (?, ?, ?)", (rowid, index_text(text, name), key))
            self._remove_vectors(conn, key, "record_rowid = ?", [rowid])
            conn.execute(
                "INSERT INTO vectors (record_rowid, user_key, vec) VALUES (?, ?, ?)",
                (rowid, key, np.ascontiguousarray(vector, dtype=np.float32).tobytes()),
            )
            last = conn.execute("SELECT max(version) FROM versions WHERE memory_id = ?", (id,)).fetchone()[0] or 0
            conn.execute(  # the versions that showed the old text from the record keep it
                "UPDATE versions SET text = ? WHERE memory_id = ? AND text IS NULL AND content_hash = ?",
                (old_text, id, old_hash),
            )
            conn.execute(
                "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, reason) "
                "VALUES (?, ?, ?, 'update', NULL, ?, ?, ?, ?)",
                (id, last + 1, user_id, content_hash(text), at, actor, reason),
            )
            if old_hash != content_hash(text):  # the graph's edges were read from the old text
                GraphStatements.of(self._lifecycle(conn)).drop([id])
            if kind == "turn" and old_hash != content_hash(text):
                turn = self._read_records(conn, [id])[0]
                lifecycle.outdate(self._lifecycle(conn), user_id, turn, at=at, actor=actor)
            return rowid

        rowid = self._write(work)
        if rowid is None:
            from ..errors import NotFoundError

            raise NotFoundError(f"no memory with id {id!r}")
        return self._records_where("r.rowid = ?", [rowid])[0][1]

    def _remove_vectors(self, conn: sqlite3.Connection, key: str, where: str, params: list[Any]) -> None:
        """Delete vectors and log their ids, so every process's mirror drops them."""
        conn.execute(
            f"INSERT INTO vector_removals (user_key, vid) SELECT user_key, vid FROM vectors WHERE {where}", params
        )
        conn.execute(f"DELETE FROM vectors WHERE {where}", params)

    def delete(self, id: str, *, at: str, actor: str | None) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT user_id FROM records WHERE id = ?", (id,)).fetchone()
            if row is None:
                return False
            lifecycle.erase(self._lifecycle(conn), row[0], [id], at=at, actor=actor)
            return True

        return self._write(work)

    def _lifecycle(self, conn: sqlite3.Connection) -> SQLLifecycle:
        return SQLLifecycle(conn, SQLITE, read=self._read_records, remove_rows=self._remove_rows)

    def _read_records(self, conn: sqlite3.Connection, ids: Sequence[str]) -> list[Record]:
        out: list[Record] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            out += [_record(row) for row in conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM records r WHERE r.id IN ({','.join('?' * len(chunk))}) ORDER BY r.rowid",
                chunk)]
        return out

    def _remove_rows(self, conn: sqlite3.Connection, ids: list[str]) -> None:
        """Remove records' rows, keywords and vectors (the lifecycle does their history)."""
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = conn.execute(
                f"SELECT rowid, user_id FROM records WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            by_user: dict[str, list[int]] = {}
            for rowid, user_id in rows:
                by_user.setdefault(user_id, []).append(rowid)
            for user_id, rowids in by_user.items():
                marks = ",".join("?" * len(rowids))
                conn.execute(f"DELETE FROM fts WHERE rowid IN ({marks})", rowids)
                self._remove_vectors(conn, user_key(user_id), f"record_rowid IN ({marks})", rowids)
                conn.execute(f"DELETE FROM records WHERE rowid IN ({marks})", rowids)

    def forget(self, scope: Scope) -> int:
        key = user_key(scope.user_id)
        whole_user = scope.agent_id is None and scope.session_id is None

        def work(conn: sqlite3.Connection) -> int:
            where, params = _scope_sql(scope)
            rowids = [row[0] for row in conn.execute(f"SELECT r.rowid FROM records r WHERE {where}", params)]
            if whole_user:
                conn.execute(
                    "DELETE FROM fts WHERE rowid IN (SELECT rowid FROM records WHERE user_id = ?)", (scope.user_id,)
                )
                conn.execute("DELETE FROM vectors WHERE user_key = ?", (key,))
                conn.execute("DELETE FROM vector_removals WHERE user_key = ?", (key,))
                conn.execute(
                    "DELETE FROM links WHERE src IN (SELECT id FROM records WHERE user_id = ?) "
                    "OR dst IN (SELECT id FROM records WHERE user_id = ?)",
                    (scope.user_id, scope.user_id),
                )
                conn.execute("DELETE FROM records WHERE user_id = ?", (scope.user_id,))
                conn.execute("DELETE FROM versions WHERE user_id = ?", (scope.user_id,))
                conn.execute("DELETE FROM jobs WHERE user_id = ?", (scope.user_id,))
                NoteStatements.of(self._lifecycle(conn)).forget_user(scope.user_id)
                conn.execute(
                    "INSERT INTO scopes (user_key, generation) VALUES (?, 1) "
                    "ON CONFLICT (user_key) DO UPDATE SET generation = generation + 1",
                    (key,),
                )
            else:
                job_where, job_params = _scope_sql(scope, "jobs")
                conn.execute(f"DELETE FROM jobs WHERE {job_where}", job_params)
                ids = [row[0] for row in conn.execute(f"SELECT r.id FROM records r WHERE {where}", params)]
                lifecycle.erase(self._lifecycle(conn), scope.user_id, ids, at=_now(), actor=None, tombstone=False)
            return len(rowids)

        count = self._write(work)
        if whole_user and self._vectors is not None:
            self._vectors.discard(key)  # other processes' mirrors see the new generation
        return count

    def reset(self) -> None:
        def work(conn: sqlite3.Connection) -> None:
            for table in ("fts", "vectors", "vector_removals", "records", "versions", "links", "jobs", "notes",
                          "note_queue"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("UPDATE scopes SET generation = generation + 1")

        self._write(work)

    def compact(self) -> None:
        """Merge FTS segments, checkpoint the WAL and VACUUM, so erased text leaves the file;
        drop the saved HNSW graphs that still hold erased vectors (rebuilt on next search)."""
        self._write(lambda c: c.execute("INSERT INTO fts (fts) VALUES ('optimize')"))
        embedder = self.embedder_name()
        if embedder is not None:
            self._cache(embedder[1]).drop_erased()
        conn = self._conn()
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"compacting {self.path} failed: {exc}") from exc

    # -- derived memories and their jobs ----------------------------------------------

    def records_by_ids(self, ids: Sequence[str], user_id: str) -> list[Record]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        # "+r": the ids' unique index, or SQLite walks the user's whole index (every row of theirs).
        found = self._records_where(f"r.id IN ({marks}) AND +r.user_id = ?", [*ids, user_id], "ORDER BY r.rowid")
        return [record for _, record in found]

    def slot_memories(self, user_id: str, slots: Sequence[str]) -> list[Record]:
        """Current (not retired) memories of these subject|attribute slots."""
        if not slots:
            return []
        marks = ",".join("?" * len(slots))
        found = self._records_where(
            f"r.user_id = ? AND r.slot IN ({marks}) AND r.valid_to IS NULL", [user_id, *slots], "ORDER BY r.rowid"
        )
        return [record for _, record in found]

    def current_derived(self, user_id: str, content_hashes: Sequence[str]) -> list[Record]:
        """Current derived memories with one of these texts (by content hash)."""
        if not content_hashes:
            return []
        marks = ",".join("?" * len(content_hashes))
        found = self._records_where(
            f"r.user_id = ? AND r.kind != 'turn' AND r.content_hash IN ({marks}) AND r.valid_to IS NULL",
            [user_id, *content_hashes], "ORDER BY r.rowid",
        )
        return [record for _, record in found]

    def complete_job(self, job: Job, outcome: JobOutcome, *, at: str, actor: str | None) -> list[Record]:
        """Write a job's memories, retire what they supersede, and end the job, in one
        transaction (lifecycle_sql.SQLLifecycle.complete_job)."""
        def insert(conn: sqlite3.Connection, records: list[NewRecord], vectors: np.ndarray) -> None:
            self._insert_many(conn, records, vectors, actor)

        ids = self._write(lambda conn: self._lifecycle(conn).complete_job(job, outcome, insert, at=at, actor=actor))
        return self.records_by_ids(ids, job.scope.user_id)

    # -- reads ------------------------------------------------------------------------

    def _records_where(self, where: str, params: Sequence[Any], tail: str = "") -> list[tuple[int, Record]]:
        sql = f"SELECT {RECORD_COLUMNS} FROM records r WHERE {where} {tail}"
        try:
            rows = self._conn().execute(sql, list(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"read from {self.path} failed: {exc}") from exc
        return [(row[0], _record(row)) for row in rows]

    def get(self, id: str, *, user_id: str | None = None) -> Record | None:
        where, params = "r.id = ?", [id]
        if user_id is not None:
            where, params = where + " AND r.user_id = ?", params + [user_id]
        found = self._records_where(where, params)
        return found[0][1] if found else None

    def by_rowids(self, rowids: Sequence[int], scope: Scope) -> dict[int, Record]:
        if not rowids:
            return {}
        # "+r": no index for the scope terms, or SQLite scans the user's whole index
        # (measured: 170 ms for 10 rows of a 1M-turn user) instead of looking up rowids.
        where, params = _scope_sql(scope, "+r")
        marks = ",".join("?" * len(rowids))
        return dict(self._records_where(f"r.rowid IN ({marks}) AND {where}", list(rowids) + params))

    def list(self, scope: Scope, conditions: list[Condition], limit: int, offset: int) -> list[Record]:
        where, params = _where(scope, conditions)
        return [
            rec for _, rec in self._records_where(
                where, params + [limit, offset], "ORDER BY r.created_at, r.rowid LIMIT ? OFFSET ?"
            )
        ]

    def count(self, scope: Scope) -> int:
        where, params = _scope_sql(scope)
        return self._conn().execute(f"SELECT count(*) FROM records r WHERE {where}", params).fetchone()[0]

    def keyword_search(self, scope: Scope, query: str, conditions: list[Condition], limit: int) -> list[ScoredId]:
        terms = fts_terms(query)
        if not terms:
            return []
        owner = user_key(scope.user_id)
        narrowed = scope.agent_id is not None or scope.session_id is not None or bool(conditions)
        try:
            conn = self._conn()
            for factor in OVERFETCH if narrowed else ():  # the user's best, narrowed after: enough if broad
                wide = self._keyword_bounded(conn, owner, terms, math.ceil(limit * factor))
                kept = self._narrow(conn, scope, conditions, [rowid for rowid, _ in wide])
                if len(kept) >= limit or len(wide) < math.ceil(limit * factor):
                    return [ScoredId(rowid, -score) for rowid, score in wide if rowid in kept][:limit]
            if narrowed:  # exact BM25 over every match, narrowed by a join
                where, params = _where(scope, conditions)
                sql = (
                    "SELECT f.rowid, bm25(fts, 1.0, 0.0) AS s FROM fts f JOIN records r ON r.rowid = f.rowid "
                    f"WHERE fts MATCH ? AND {where} ORDER BY s LIMIT ?"
                )
                rows = conn.execute(sql, [_scoped(owner, terms)] + params + [limit]).fetchall()
            else:
                rows = self._keyword_bounded(conn, owner, terms, limit)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"keyword search failed: {exc}") from exc
        return [ScoredId(rowid, -score) for rowid, score in rows]

    def _keyword_bounded(self, conn: sqlite3.Connection, owner: str, terms: list[str], limit: int) -> list[tuple]:
        """BM25 over a user's matches, at a cost that does not grow with the user's size.

        Up to KEYWORD_WINDOW matches, this is exact BM25. Past it, words that match more
        than KEYWORD_WINDOW rows of the store are dropped as stopwords if rarer words
        remain; if none do, only the user's newest KEYWORD_WINDOW matches are ranked.

        bm25() first counts the rows of every phrase in the query, and the owner phrase
        matches every row of the user (1M rows: ~90 ms before any scoring). So candidates
        are listed with the owner phrase (rowid order, no ranking, cheap), then ranked
        without it over their rowid range. The owner column has weight 0: same scores.
        """
        window, cap = _newest(conn, _scoped(owner, terms), KEYWORD_WINDOW + 1), KEYWORD_WINDOW
        if len(window) > KEYWORD_WINDOW and len(terms) > 1:
            rare = [t for t in terms if 0 < _count(conn, f"text : {t}", KEYWORD_WINDOW + 1) <= KEYWORD_WINDOW]
            if rare:
                terms, cap = rare, KEYWORD_WINDOW * len(rare)
                window = _newest(conn, _scoped(owner, terms), cap)
        window = window[:cap]
        if not window:
            return []
        members, oldest = set(window), window[-1]
        unscoped = f"text : ({' OR '.join(terms)})"
        in_range = conn.execute(
            "SELECT count(*) FROM fts WHERE fts MATCH ? AND rowid >= ?", (unscoped, oldest)
        ).fetchone()[0]
        if in_range > 4 * len(members):  # mostly other users' rows: rank with the owner phrase
            return conn.execute(
                "SELECT rowid, bm25(fts, 1.0, 0.0) AS s FROM fts WHERE fts MATCH ? AND rowid >= ? ORDER BY s LIMIT ?",
                (_scoped(owner, terms), oldest, limit),
            ).fetchall()
        out = []
        ranked = conn.execute(
            "SELECT rowid, bm25(fts, 1.0, 0.0) AS s FROM fts WHERE fts MATCH ? AND rowid >= ? ORDER BY s",
            (unscoped, oldest),
        )
        try:
            for rowid, score in ranked:
                if rowid in members:
                    out.append((rowid, score))
                    if len(out) == limit:
                        break
        finally:
            ranked.close()  # ends the statement (and its read) when we stop early
        return out

    def vector_search(self, scope: Scope, vector: np.ndarray, conditions: list[Condition], limit: int) -> list[ScoredId]:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        key = user_key(scope.user_id)
        mirror = self._cache(len(vector)).scope(key)
        narrowed = scope.agent_id is not None or scope.session_id is not None or bool(conditions)
        for factor in OVERFETCH if narrowed else ():  # the scope's nearest, narrowed after: enough if broad
            wide = self.vector_search(Scope(scope.user_id), vector, [], math.ceil(limit * factor))
            kept = self._narrow(self._conn(), scope, conditions, [item.rowid for item in wide])
            if len(kept) >= limit or len(wide) < math.ceil(limit * factor):
                return [item for item in wide if item.rowid in kept][:limit]
        with mirror.lock:
            with self._read() as conn:
                mirror.catch_up(self._scope_state(conn, key), lambda after, seq: self._delta(conn, key, after, seq))
                allowed = None
                if narrowed:
                    where, params = _where(scope, conditions)
                    allowed = np.fromiter(
                        (row[0] for row in conn.execute(
                            f"SELECT v.vid FROM vectors v JOIN records r ON r.rowid = v.record_rowid WHERE {where}",
                            params,
                        )),
                        dtype=np.int64,
                    )
            found = mirror.search(vector, limit, allowed)
        if not found:
            return []
        marks = ",".join("?" * len(found))
        owners = dict(
            self._conn().execute(
                f"SELECT vid, record_rowid FROM vectors WHERE vid IN ({marks}) AND user_key = ?",
                [vid for vid, _ in found] + [key],
            ).fetchall()
        )
        return [ScoredId(owners[vid], score) for vid, score in found if vid in owners]

    def vector_search_many(self, scope: Scope, vectors: np.ndarray, conditions: list[Condition],
                           limit: int) -> list[list[ScoredId]]:
        """`vector_search` for each row of `vectors`, the mirror caught up and read once
        per round for all of them (the notes lane searches for a batch of memories)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(vectors) == 0:
            return []
        vectors = vectors.reshape(len(vectors), -1)
        key = user_key(scope.user_id)
        mirror = self._cache(vectors.shape[1]).scope(key)
        narrowed = scope.agent_id is not None or scope.session_id is not None or bool(conditions)
        out: list[list[ScoredId] | None] = [None] * len(vectors)
        pending = list(range(len(vectors)))
        for factor in OVERFETCH if narrowed else (1,):  # as vector_search: the user's nearest, narrowed after
            depth = math.ceil(limit * factor)
            with mirror.lock:
                with self._read() as conn:
                    mirror.catch_up(self._scope_state(conn, key),
                                    lambda after, seq: self._delta(conn, key, after, seq))
                found = mirror.search_many(vectors[pending], depth)
            vids = sorted({vid for pairs in found for vid, _ in pairs})
            owners: dict[int, int] = {}
            for start in range(0, len(vids), 500):
                chunk = vids[start:start + 500]
                owners.update(self._conn().execute(
                    f"SELECT vid, record_rowid FROM vectors WHERE vid IN ({','.join('?' * len(chunk))}) "
                    "AND user_key = ?", [*chunk, key]).fetchall())
            wide = [[ScoredId(owners[vid], score) for vid, score in pairs if vid in owners] for pairs in found]
            if not narrowed:
                for i, items in zip(pending, wide):
                    out[i] = items
                return [items or [] for items in out]
            kept = self._narrow(self._conn(), scope, conditions, sorted({x.rowid for items in wide for x in items}))
            waiting = []
            for i, items in zip(pending, wide):
                mine = [x for x in items if x.rowid in kept]
                if len(mine) >= limit or len(items) < depth:
                    out[i] = mine[:limit]
                else:
                    waiting.append(i)
            pending = waiting
            if not pending:
                break
        for i in pending:  # too few in the scope among the nearest: vector_search's exact filtered search
            out[i] = self.vector_search(scope, vectors[i], conditions, limit)
        return [items or [] for items in out]

    def _narrow(self, conn: sqlite3.Connection, scope: Scope, conditions: list[Condition],
                rowids: list[int]) -> set[int]:
        """Which of `rowids` are in the scope and pass the conditions."""
        if not rowids:
            return set()
        # "+r": no index for the scope and the conditions, or SQLite walks the user's index
        # (1M rows) instead of looking the few rowids up.
        where, params = _where(scope, conditions, "+r")
        marks = ",".join("?" * len(rowids))
        return {row[0] for row in conn.execute(
            f"SELECT r.rowid FROM records r WHERE r.rowid IN ({marks}) AND {where}", [*rowids, *params])}

    def _scope_state(self, conn: sqlite3.Connection, key: str) -> ScopeState:
        row = conn.execute("SELECT generation FROM scopes WHERE user_key = ?", (key,)).fetchone()
        seq = conn.execute("SELECT max(seq) FROM vector_removals WHERE user_key = ?", (key,)).fetchone()[0]
        return ScopeState(row[0] if row else 0, seq or 0)

    def _delta(self, conn: sqlite3.Connection, key: str, after_vid: int, after_seq: int) -> Delta:
        # Filled row by row into arrays sized first (same snapshot): a first load of 1M
        # vectors holds one copy of them, not three (row tuples, joined bytes, matrix).
        count = conn.execute(
            "SELECT count(*) FROM vectors WHERE user_key = ? AND vid > ?", (key, after_vid)
        ).fetchone()[0]
        keys = np.empty(count, dtype=np.int64)
        matrix = np.empty((0, 0), dtype=np.float32)
        filled = 0
        for vid, blob in conn.execute(
            "SELECT vid, vec FROM vectors WHERE user_key = ? AND vid > ? ORDER BY vid", (key, after_vid)
        ):
            if filled == 0:
                matrix = np.empty((count, len(blob) // 4), dtype=np.float32)
            keys[filled] = vid
            matrix[filled] = np.frombuffer(blob, dtype=np.float32)
            filled += 1
        keys, matrix = keys[:filled], matrix[:filled]
        removed = conn.execute(
            "SELECT vid, seq FROM vector_removals WHERE user_key = ? AND seq > ? ORDER BY seq", (key, after_seq)
        ).fetchall()
        return Delta(
            keys=keys,
            matrix=matrix,
            removed=np.fromiter((r[0] for r in removed), dtype=np.int64, count=len(removed)),
            removal_seq=removed[-1][1] if removed else after_seq,
        )

    def history(self, id: str) -> list[Version]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT version, event, text, content_hash, at, actor, reason FROM versions "
                "WHERE memory_id = ? ORDER BY version",
                (id,),
            ).fetchall()
            current = conn.execute("SELECT text, content_hash FROM records WHERE id = ?", (id,)).fetchone()
        # Versions are written without text: those with the live text show it (a retired
        # memory keeps its text); older ones show what update() kept of theirs.
        return [
            Version(id, version, event, current[0] if current and digest == current[1] else text, digest, at,
                    actor, reason)
            for version, event, text, digest, at, actor, reason in rows
        ]

    def history_owner(self, id: str) -> str | None:
        row = self._conn().execute("SELECT user_id FROM versions WHERE memory_id = ? LIMIT 1", (id,)).fetchone()
        return row[0] if row else None

    # -- export / import --------------------------------------------------------------

    def export(self, scope: Scope) -> Iterator[ExportedRecord]:
        where, params = _scope_sql(scope)
        last = 0
        while True:
            batch = self._records_where(f"{where} AND r.rowid > ?", params + [last], "ORDER BY r.rowid LIMIT 500")
            if not batch:
                return
            rowids = [rowid for rowid, _ in batch]
            marks = ",".join("?" * len(rowids))
            vecs = dict(
                self._conn().execute(
                    f"SELECT record_rowid, vec FROM vectors WHERE record_rowid IN ({marks})", rowids
                ).fetchall()
            )
            vitals = self.vitals([record.id for _, record in batch])
            for rowid, record in batch:
                blob = vecs.get(rowid)
                yield ExportedRecord(
                    record=record,
                    vector=np.frombuffer(blob, dtype=np.float32) if blob is not None else None,
                    versions=self.history(record.id),
                    vitals=vitals.get(record.id),
                )
            last = rowids[-1]

    def import_records(self, items: Sequence[ExportedRecord], vectors: np.ndarray) -> int:
        def work(conn: sqlite3.Connection) -> int:
            written = 0
            for item, vec in zip(items, vectors):
                rec = item.record
                if conn.execute("SELECT 1 FROM records WHERE id = ?", (rec.id,)).fetchone():
                    continue
                self._insert_one(
                    conn,
                    NewRecord(
                        id=rec.id, scope=Scope(rec.user_id, rec.agent_id, rec.session_id), kind=rec.kind,
                        text=rec.text, created_at=rec.created_at, recorded_at=rec.recorded_at, role=rec.role,
                        name=rec.name, sources=rec.sources, metadata=rec.metadata, valid_to=rec.valid_to,
                    ),
                    vec,
                )
                conn.execute("UPDATE records SET updated_at = ?, expired_at = ?, state = ? WHERE id = ?",
                             (rec.updated_at, rec.expired_at, rec.state, rec.id))
                if item.vitals is not None:
                    SQLVitals(conn, SQLITE).write([item.vitals])
                conn.execute("DELETE FROM versions WHERE memory_id = ?", (rec.id,))
                versions = item.versions or [
                    Version(rec.id, 1, "add", None, content_hash(rec.text), rec.recorded_at, None, None)
                ]
                for v in versions:
                    text = None if v is versions[-1] else v.text
                    conn.execute(
                        "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, "
                        "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (rec.id, v.version, rec.user_id, v.event, text, v.content_hash, v.at, v.actor, v.reason),
                    )
                written += 1
            return written

        return self._write(work)

    def export_derived(self, user_id: str) -> dict[str, Any]:
        """What a user's records do not carry of their distillation (slots, links to
        turns, queued jobs), for moving a whole store; the same from every store."""
        with self._read() as conn:
            slots = dict(conn.execute(
                "SELECT id, slot FROM records WHERE user_id = ? AND slot IS NOT NULL ORDER BY rowid", (user_id,)))
            links = [[src, type, dst, json.loads(sources), suffices] for src, type, dst, sources, suffices in conn.execute(
                "SELECT l.src, l.type, l.dst, l.sources, l.suffices FROM links l JOIN records r ON r.id = l.dst "
                "WHERE r.user_id = ? ORDER BY l.src, l.type, l.dst", (user_id,))]
            jobs = self._lifecycle(conn).export_jobs(user_id)
            notes = NoteStatements.of(self._lifecycle(conn)).export(user_id)
            graph = GraphStatements.of(self._lifecycle(conn)).export(user_id)
        return {"slots": slots, "links": links, "jobs": jobs, **notes, "graph_mentions": graph}

    def import_derived(self, user_id: str, data: dict[str, Any]) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE records SET slot = ? WHERE id = ? AND user_id = ?",
                             [(slot, m, user_id) for m, slot in data.get("slots", {}).items()])
            conn.executemany(
                "INSERT OR IGNORE INTO links (src, type, dst, sources, suffices) SELECT ?, ?, ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM records WHERE id = ? AND user_id = ?)",
                [(src, type, dst, json.dumps(sources), int(suffices), dst, user_id)
                 for src, type, dst, sources, suffices in exported_links(data)])
            self._lifecycle(conn).import_jobs(user_id, data.get("jobs", []))
            NoteStatements.of(self._lifecycle(conn)).import_(user_id, data)
            GraphStatements.of(self._lifecycle(conn)).import_(user_id, data.get("graph_mentions", []))

        self._write(work)

    def users(self) -> list[str]:
        """Every user with records or history, for moving a whole store."""
        rows = self._conn().execute("SELECT user_id FROM records UNION SELECT user_id FROM versions ORDER BY 1")
        return [row[0] for row in rows]

    def tombstones(self) -> Iterator[tuple[str, list[Version]]]:
        """The histories left by deleted memories (hashes only), as (user_id, versions)."""
        last = ""
        while True:
            rows = self._conn().execute(
                "SELECT DISTINCT v.memory_id, v.user_id FROM versions v WHERE v.memory_id > ? "
                "AND NOT EXISTS (SELECT 1 FROM records r WHERE r.id = v.memory_id) ORDER BY 1 LIMIT 500",
                (last,),
            ).fetchall()
            if not rows:
                return
            for memory_id, user_id in rows:
                yield user_id, self.history(memory_id)
            last = rows[-1][0]

    def import_tombstones(self, items: Sequence[tuple[str, list[Version]]]) -> int:
        """Write deleted memories' histories; ids with any history or record are skipped."""
        def work(conn: sqlite3.Connection) -> int:
            written = 0
            for user_id, versions in items:
                memory_id = versions[0].memory_id
                if conn.execute(
                    "SELECT 1 FROM versions WHERE memory_id = ? UNION ALL SELECT 1 FROM records WHERE id = ?",
                    (memory_id, memory_id),
                ).fetchone():
                    continue
                conn.executemany(
                    "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, "
                    "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(v.memory_id, v.version, user_id, v.event, v.text, v.content_hash, v.at, v.actor, v.reason)
                     for v in versions],
                )
                written += 1
            return written

        return self._write(work)

    # -- re-embedding -----------------------------------------------------------------

    def missing_vectors(self, limit: int) -> list[tuple[int, str]]:
        """Records without a vector, with the text to embed them under."""
        rows = self._conn().execute(
            "SELECT r.rowid, r.text, r.name FROM records r LEFT JOIN vectors v ON v.record_rowid = r.rowid "
            "WHERE v.vid IS NULL ORDER BY r.rowid LIMIT ?",
            (limit,),
        ).fetchall()
        return [(rowid, index_text(text, name)) for rowid, text, name in rows]

    def set_vectors(self, rowids: Sequence[int], vectors: np.ndarray) -> None:
        def work(conn: sqlite3.Connection) -> None:
            for rowid, vec in zip(rowids, vectors):
                row = conn.execute("SELECT user_id FROM records WHERE rowid = ?", (rowid,)).fetchone()
                if row is None:
                    continue
                key = user_key(row[0])
                self._remove_vectors(conn, key, "record_rowid = ?", [rowid])
                conn.execute(
                    "INSERT INTO vectors (record_rowid, user_key, vec) VALUES (?, ?, ?)",
                    (rowid, key, np.ascontiguousarray(vec, dtype=np.float32).tobytes()),
                )

        self._write(work)

    def clear_vectors(self) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM vectors")
            conn.execute("DELETE FROM vector_removals")
            conn.execute("UPDATE scopes SET generation = generation + 1")

        self._write(work)
        self._vectors = None

    # -- stats and lifecycle ----------------------------------------------------------

    def stats(self, user_id: str | None = None) -> dict[str, Any]:
        conn = self._conn()
        where, params = ("WHERE user_id = ?", [user_id]) if user_id is not None else ("", [])
        kinds = dict(conn.execute(f"SELECT kind, count(*) FROM records {where} GROUP BY kind", params).fetchall())
        out: dict[str, Any] = {
            "store": self.url,
            "records": sum(kinds.values()),
            "by_kind": kinds,
            "sessions": conn.execute(
                f"SELECT count(DISTINCT coalesce(session_id, '')) FROM records {where}", params
            ).fetchone()[0],
            "schema": self.applied_migrations(),
            "by_state": dict(conn.execute(f"SELECT state, count(*) FROM records {where} GROUP BY state",
                                          params).fetchall()),
        }
        if user_id is None:
            out["users"] = conn.execute("SELECT count(DISTINCT user_id) FROM records").fetchone()[0]
            out["file_bytes"] = sum(
                p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists()
            )
        embedder = self.embedder_name()
        out["embedder"] = embedder[0] if embedder else None
        return out

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for background vector-index builds; True when none is left running."""
        return self._vectors is None or self._vectors.wait_for_builds(timeout)

    def check_integrity(self) -> str:
        return self._conn().execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        if self._closed:
            return
        if self._vectors is not None:
            try:
                self._vectors.save_all()
            except OSError:
                pass  # the HNSW file is only a cache; it is rebuilt when missing
        self._closed = True
        with self._conn_lock:
            for conn in self._connections:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._connections.clear()


def _now() -> str:
    return format_ts(SystemClock().now())


def _scoped(owner: str, terms: list[str]) -> str:
    return f"owner : {owner} AND text : ({' OR '.join(terms)})"


def _newest(conn: sqlite3.Connection, expression: str, count: int) -> list[int]:
    """Rowids of the newest `count` rows matching, newest first (no ranking: cheap)."""
    return [
        row[0] for row in conn.execute(
            "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY rowid DESC LIMIT ?", (expression, count)
        )
    ]


def _count(conn: sqlite3.Connection, expression: str, at_most: int) -> int:
    """How many rows match, counting no further than `at_most`."""
    return conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM fts WHERE fts MATCH ? LIMIT ?)", (expression, at_most)
    ).fetchone()[0]


def _header(path: Path) -> bytes | None:
    """The first 100 bytes of a file (SQLite's header), or None when there is no file."""
    try:
        with open(path, "rb") as fh:
            return fh.read(100)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc


def _not_engram(conn: sqlite3.Connection) -> str | None:
    """Why the database behind `conn` is not an Engram store, or None when it is one or
    is empty. Engram's mark is its schema_migrations table holding its first migration
    (other tools keep a table of that name too)."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    if not tables:
        return None
    if "schema_migrations" in tables:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")}
        if {"name", "applied_at"} <= columns and conn.execute(
            "SELECT 1 FROM schema_migrations WHERE name = ?", (MIGRATIONS[0][0],)
        ).fetchone():
            return None
    shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    return f"it holds other tables ({shown}) and no record of Engram's migrations"


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _scope_sql(scope: Scope, alias: str = "r") -> tuple[str, list[Any]]:
    parts, params = [f"{alias}.user_id = ?"], [scope.user_id]
    if scope.agent_id is not None:
        parts.append(f"{alias}.agent_id = ?")
        params.append(scope.agent_id)
    if scope.session_id is not None:
        parts.append(f"{alias}.session_id = ?")
        params.append(scope.session_id)
    return " AND ".join(parts), params


def _where(scope: Scope, conditions: list[Condition], alias: str = "r") -> tuple[str, list[Any]]:
    where, params = _scope_sql(scope, alias)
    if conditions:
        extra, extra_params = to_sql(conditions, alias)
        where, params = f"{where} AND {extra}", params + extra_params
    return where, params


def _record(row: tuple) -> Record:
    (_, id, user_id, agent_id, session_id, kind, role, name, text, sources, metadata,
     created_at, valid_to, recorded_at, updated_at, expired_at) = row[:16]
    return Record(
        id=id, user_id=user_id, agent_id=agent_id, session_id=session_id, kind=kind, text=text, role=role,
        name=name, sources=json.loads(sources), metadata=json.loads(metadata), created_at=created_at,
        valid_to=valid_to, recorded_at=recorded_at, updated_at=updated_at, seq=row[0], expired_at=expired_at,
        state=row[16],
    )
