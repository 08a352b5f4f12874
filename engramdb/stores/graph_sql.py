"""The entity graph's statements (graph.py), written once for SQLite and PostgreSQL over
the lifecycle's dialect: one table, `graph_mentions`, a row per memory with the phrases
it says (a JSON list: search reads the rows of its candidates, a few hundred at a time).

A row follows its memory: it is written only while the memory still holds the text the
phrase was read from (its `content_hash`), it goes when the memory's text changes
(`drop`, from the stores' update) and with the memory itself (ON DELETE CASCADE on
`records.id`, migration 0010), so an erased turn leaves no phrase of its in the graph.
Reads join the record's current hash, so a stale row is never read either."""

from __future__ import annotations

import json
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
            if not mention.phrases:
                continue
            self._run(
                "INSERT INTO graph_mentions (record_id, user_id, content_hash, phrases) "
                "SELECT id, user_id, content_hash, ? FROM records WHERE id = ? AND user_id = ? AND content_hash = ? "
                "ON CONFLICT (record_id) DO UPDATE SET content_hash = excluded.content_hash, phrases = excluded.phrases",
                (json.dumps(list(dict.fromkeys(mention.phrases))), mention.record_id, user_id, mention.content_hash))

    def drop(self, ids: Sequence[str]) -> None:
        """These memories' text changed: their phrases go (re-derivation writes them again)."""
        for start in range(0, len(ids), CHUNK):
            where, params = self._in("record_id", list(ids[start:start + CHUNK]))
            self._run(f"DELETE FROM graph_mentions WHERE {where}", params)

    def read(self, user_id: str, ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The phrases of these memories of the user, read from their current text."""
        out: dict[str, tuple[str, ...]] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), CHUNK):
            where, params = self._in("g.record_id", unique[start:start + CHUNK])
            for record_id, phrases in self._rows(
                    "SELECT g.record_id, g.phrases FROM graph_mentions g JOIN records r ON r.id = g.record_id "
                    f"AND r.content_hash = g.content_hash WHERE g.user_id = ? AND {where}", [user_id, *params]):
                out[record_id] = tuple(json.loads(phrases))
        return out

    def export(self, user_id: str) -> list[list[Any]]:
        """[memory id, content hash, [phrases]] rows, for a cube or a migration."""
        return [[record_id, digest, json.loads(phrases)] for record_id, digest, phrases in self._rows(
            "SELECT g.record_id, g.content_hash, g.phrases FROM graph_mentions g JOIN records r ON r.id = g.record_id "
            "AND r.content_hash = g.content_hash WHERE g.user_id = ? ORDER BY g.record_id", (user_id,))]

    def import_(self, user_id: str, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of `export`, for the memories that exist with the same text."""
        self.put(user_id, [Mention(record_id, digest, tuple(phrases)) for record_id, digest, phrases in rows])

    def size(self, user_id: str) -> int:
        return sum(len(json.loads(row[0])) for row in self._rows(
            "SELECT phrases FROM graph_mentions WHERE user_id = ?", (user_id,)))


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
            return GraphStatements.of(self._lifecycle(conn)).size(user_id)

