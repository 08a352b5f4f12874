"""The entity graph's statements (graph.py), written once for SQLite and PostgreSQL over
the lifecycle's dialect: one table, `graph_mentions`, a row per (memory, phrase it says).

A row follows its memory: it is written only while the memory still holds the text the
phrase was read from (its `content_hash`), it goes when the memory's text changes
(`drop`, from the stores' update) and with the memory itself (ON DELETE CASCADE on
`records.id`, migration 0010), so an erased turn leaves no phrase of its in the graph.
Reads join the record's current hash, so a stale row is never read either."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .base import Mention
from .statements import Statements

CHUNK = 500


class GraphStatements(Statements):
    """The graph's statements on one connection (inside the caller's transaction)."""

    @classmethod
    def of(cls, tx: Any) -> "GraphStatements":
        """On a store's lifecycle transaction (`SQLLifecycle`)."""
        return cls(tx.conn, tx.d)

    def put(self, user_id: str, mentions: Sequence[Mention]) -> None:
        """Replace these memories' phrases, where each memory (of this user) still holds
        the text they were read from; others are left as they are."""
        for mention in mentions:
            self._run("DELETE FROM graph_mentions WHERE record_id = ? AND content_hash <> ?",
                      (mention.record_id, mention.content_hash))
            for key in dict.fromkeys(mention.phrases):
                self._run(
                    "INSERT INTO graph_mentions (record_id, entity, user_id, content_hash) "
                    "SELECT id, ?, user_id, content_hash FROM records WHERE id = ? AND user_id = ? "
                    "AND content_hash = ? ON CONFLICT (record_id, entity) DO NOTHING",
                    (key, mention.record_id, user_id, mention.content_hash))

    def drop(self, ids: Sequence[str]) -> None:
        """These memories' text changed: their phrases go (re-derivation writes them again)."""
        for start in range(0, len(ids), CHUNK):
            where, params = self._in("record_id", list(ids[start:start + CHUNK]))
            self._run(f"DELETE FROM graph_mentions WHERE {where}", params)

    def read(self, user_id: str, ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The phrases of these memories of the user, read from their current text."""
        out: dict[str, list[str]] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), CHUNK):
            where, params = self._in("g.record_id", unique[start:start + CHUNK])
            for record_id, entity in self._rows(
                    "SELECT g.record_id, g.entity FROM graph_mentions g JOIN records r ON r.id = g.record_id "
                    f"AND r.content_hash = g.content_hash WHERE g.user_id = ? AND {where} "
                    "ORDER BY g.record_id, g.entity", [user_id, *params]):
                out.setdefault(record_id, []).append(entity)
        return {k: tuple(v) for k, v in out.items()}

    def export(self, user_id: str) -> list[list[str]]:
        """[memory id, content hash, phrase] rows, for a cube or a migration."""
        return [list(row) for row in self._rows(
            "SELECT g.record_id, g.content_hash, g.entity FROM graph_mentions g JOIN records r ON r.id = g.record_id "
            "AND r.content_hash = g.content_hash WHERE g.user_id = ? ORDER BY g.record_id, g.entity", (user_id,))]

    def import_(self, user_id: str, rows: Sequence[Sequence[str]], rename: Callable[[str], str] = str) -> None:
        """Rows of `export`, for the memories that exist with the same text."""
        grouped: dict[tuple[str, str], list[str]] = {}
        for record_id, digest, entity in rows:
            grouped.setdefault((rename(record_id), digest), []).append(entity)
        self.put(user_id, [Mention(r, d, tuple(e)) for (r, d), e in grouped.items()])


class SQLGraph:
    """The graph methods of a store (stores.base.Graph) over `GraphStatements`; the store
    provides `_write(work)`, `_read()` and `_lifecycle(conn)`, as for `SQLNotes`."""

    _write: Callable[..., Any]
    _read: Callable[..., Any]
    _lifecycle: Callable[[Any], Any]

    def mentions(self, user_id: str, ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The phrases each of these memories of the user says (entity graph, graph.py)."""
        with self._read() as conn:
            return GraphStatements.of(self._lifecycle(conn)).read(user_id, ids)

    def write_mentions(self, user_id: str, mentions: Sequence[Mention]) -> None:
        """Replace these memories' phrases (GraphStatements.put), in one transaction."""
        self._write(lambda conn: GraphStatements.of(self._lifecycle(conn)).put(user_id, mentions))

    def graph_size(self, user_id: str) -> int:
        """How many (memory, phrase) rows the user's graph holds."""
        with self._read() as conn:
            tx = self._lifecycle(conn)
            return int(GraphStatements.of(tx)._rows("SELECT count(*) FROM graph_mentions WHERE user_id = ?",
                                                   (user_id,))[0][0])

