"""One connection and its SQL dialect, with the three helpers every SQL module of the
lifecycle uses (the lifecycle transaction, vitals, notes): statements are written once
with `?` marks and `Dialect.sql` turns them into the backend's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Statements:
    def __init__(self, conn: Any, dialect: Any) -> None:  # dialect: lifecycle_sql.Dialect
        self.conn = conn
        self.d = dialect

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.conn.execute(self.d.sql(statement), list(params)).fetchall())

    def _run(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(self.d.sql(statement), list(params))

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        where, params = self.d.in_list(column, values)
        return where.replace(self.d.mark, "?"), params
