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
        and last time said."""
        rows = self._select(
            "SELECT session_id, count(*), min(created_at), max(created_at) FROM records WHERE user_id = ? "
            "GROUP BY session_id ORDER BY max(created_at) DESC, session_id LIMIT ?", [user_id, limit])
        return [{"session_id": s, "records": int(n), "first": first, "last": last} for s, n, first, last in rows]

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
