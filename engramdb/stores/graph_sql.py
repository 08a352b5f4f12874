"""The entity graph's statements (graph.py), written once for SQLite and PostgreSQL over
the lifecycle's dialect: one table, `graph_mentions`, a row per memory with the phrases
it says (a JSON list: search reads the rows of its candidates, a few hundred at a time);
an empty list for a memory read that says none, so that a memory without a row is one
never read (the graph backfill's work).

A row follows its memory: it is written only while the memory still holds the text the
phrase was read from (its `content_hash`), it goes when the memory's text changes
(`drop`, from the stores' update) and with the memory itself (ON DELETE CASCADE on
`records.id`, migration 0010), so an erased turn leaves no phrase of its in the graph.
Reads join the record's current hash, so a stale row is never read either."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .base import Mention
from .statements import Statements

CHUNK = 500
MARK = "graph_rowid"  # meta key: the backfill's watermark (records.rowid), so that it resumes after a crash


@dataclass(frozen=True)
class GraphWork:
    """One round of the graph backfill (lifecycle/graph_lane.py): turns of one user that
    were distilled but have no edges, and the watermark to store once they are written.
    `turns` is empty when the next turn still waits for its distillation (`blocked`), or
    when no turn past the watermark lacks edges (no `user_id`: only the watermark moves)."""

    user_id: str
    turns: tuple[str, ...]
    mark: int
    blocked: bool = False


class GraphStatements(Statements):
    """The graph's statements on one connection (inside the caller's transaction)."""

    @classmethod
    def of(cls, tx: Any) -> "GraphStatements":
        """On a store's lifecycle transaction (`SQLLifecycle`)."""
        return cls(tx.conn, tx.d)

    def put(self, user_id: str, mentions: Sequence[Mention]) -> None:
        """Replace these memories' phrases (none: an empty row, read and found to say
        nothing), where each memory (of this user) still holds the text they were read
        from; others are left as they are."""
        for mention in mentions:
            self._run(
                "INSERT INTO graph_mentions (record_id, user_id, content_hash, phrases) "
                "SELECT id, user_id, content_hash, ? FROM records WHERE id = ? AND user_id = ? AND content_hash = ? "
                "ON CONFLICT (record_id) DO UPDATE SET content_hash = excluded.content_hash, phrases = excluded.phrases",
                (json.dumps(list(dict.fromkeys(mention.phrases))), mention.record_id, user_id, mention.content_hash))

    def drop(self, ids: Sequence[str]) -> None:
        """These memories' text changed: their phrases go (re-derivation writes them
        again), and the backfill's watermark moves back below the turns among them, so
        that a turn whose re-derivation ran with the graph off is read again."""
        lowest = None
        for start in range(0, len(ids), CHUNK):
            where, params = self._in("record_id", list(ids[start:start + CHUNK]))
            self._run(f"DELETE FROM graph_mentions WHERE {where}", params)
            where, params = self._in("id", list(ids[start:start + CHUNK]))
            found = self._rows(f"SELECT min(rowid) FROM records WHERE kind = 'turn' AND {where}", params)[0][0]
            if found is not None and (lowest is None or found < lowest):
                lowest = found
        if lowest is not None and lowest <= self.mark():
            self.set_mark(lowest - 1)

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

    # -- the backfill (lifecycle/graph_lane.py) -------------------------------------------------

    def mark(self) -> int:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (MARK,))
        return int(rows[0][0]) if rows else 0

    def set_mark(self, mark: int) -> None:
        self._run("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                  (MARK, str(mark)))

    def work(self, limit: int) -> GraphWork | None:
        """The next turns past the watermark without edges, of the first such turn's
        user, up to another user's turn or one a distillation job still names (that job
        writes its edges itself). None when nothing is left past the watermark."""
        rows = self._rows(
            "SELECT r.rowid, r.id, r.user_id FROM records r WHERE r.rowid > ? AND r.kind = 'turn' AND NOT EXISTS "
            "(SELECT 1 FROM graph_mentions g WHERE g.record_id = r.id) ORDER BY r.rowid LIMIT ?", (self.mark(), limit))
        if not rows:  # every turn past the watermark has its edges: only the watermark moves
            top = self._rows("SELECT max(rowid) FROM records")[0][0] or 0
            return GraphWork("", (), top) if top > self.mark() else None
        user = rows[0][2]
        waiting: set[str] = set()
        failed: set[str] = set()
        for named, state in self._rows("SELECT record_ids, state FROM jobs WHERE user_id = ? AND state IN "
                                       "('pending', 'running', 'failed')", (user,)):
            (failed if state == "failed" else waiting).update(self.d.load_json(named))
        turns, mark = [], self.mark()
        for rowid, record_id, owner in rows:
            if owner != user or record_id in waiting:
                break
            if record_id not in failed:  # never distilled (parked): no edges, as distillation gives it none
                turns.append(record_id)
            mark = rowid
        return GraphWork(user, tuple(turns), mark, blocked=mark == self.mark())

    def derived_sources(self, user_id: str, turns: Sequence[str], upto: int) -> dict[str, tuple[str, ...]]:
        """The user's memories derived from these turns that have no edges, each with
        every turn it was derived from; a memory with a turn past `upto` (a rowid: a turn
        of a later round) is left to that round, which knows all its turns' phrases."""
        out: dict[str, list[str]] = {}
        later: set[str] = set()
        for start in range(0, len(turns), CHUNK):
            where, params = self._in("a.dst", list(turns[start:start + CHUNK]))
            for src, dst, rowid in self._rows(
                    "SELECT a.src, b.dst, t.rowid FROM links a JOIN links b ON b.src = a.src AND b.type = 'derived_from' "
                    "JOIN records r ON r.id = a.src JOIN records t ON t.id = b.dst WHERE a.type = 'derived_from' AND "
                    "r.user_id = ? AND NOT EXISTS (SELECT 1 FROM graph_mentions g WHERE g.record_id = a.src) AND "
                    f"{where} ORDER BY a.src, b.dst", [user_id, *params]):
                found = out.setdefault(src, [])
                if dst not in found:
                    found.append(dst)
                if rowid > upto:
                    later.add(src)
        return {src: tuple(dsts) for src, dsts in out.items() if src not in later}

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

    def graph_work(self, limit: int) -> GraphWork | None:
        """The graph backfill's next round (GraphStatements.work)."""
        with self._read() as conn:
            return GraphStatements.of(self._lifecycle(conn)).work(limit)

    def graph_derived(self, user_id: str, turns: Sequence[str], upto: int) -> dict[str, tuple[str, ...]]:
        """Memories derived from these turns of the user that have no edges, with their
        turns (GraphStatements.derived_sources)."""
        with self._read() as conn:
            return GraphStatements.of(self._lifecycle(conn)).derived_sources(user_id, turns, upto)

    def write_backfill(self, user_id: str, mentions: Sequence[Mention], mark: int) -> None:
        """A backfill round's edges and its watermark, in one transaction (a crash before
        it commits redoes the round)."""
        def work(conn: Any) -> None:
            graph = GraphStatements.of(self._lifecycle(conn))
            graph.put(user_id, mentions)
            graph.set_mark(max(mark, graph.mark()))
        self._write(work)

    def graph_size(self, user_id: str) -> int:
        """How many (memory, phrase) rows the user's graph holds."""
        with self._read() as conn:
            return GraphStatements.of(self._lifecycle(conn)).size(user_id)

