"""Notes and `relates_to` links in SQL, written once for SQLite and PostgreSQL over the
lifecycle's dialect (lifecycle_sql.Dialect). `NoteStatements` runs inside a store's open
transaction (the erasure's included: `erase` takes back every note version an erased
memory shaped); `SQLNotes` is the store-facing half, like `SQLJobs`.

Tables (migration 0009_notes): `notes` holds every version of every note (the current
one is the highest), with the memories that shaped it (`causes`, by id); `note_queue`
the memories whose notes must be made again or re-derived; `links` rows of type
`relates_to` carry a reason and a strength. New memories are found past a watermark
(`meta.notes_rowid`), looking back `WINDOW` rows for any committed late."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..living.notes import Note, NotesBatch, NoteWork, Relation
from .statements import Statements

CHUNK = 500
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]+")  # written into JSON as it is, by any writer
WINDOW = 1000  # rows behind the watermark looked at again: on PostgreSQL a lower rowid can commit later
MARK = "notes_rowid"
NOTE_COLUMNS = "memory_id, version, keywords, tags, context, made_by, causes, reason, at, content_hash"
EXPORT_FIELDS = ("memory_id", "version", "keywords", "tags", "context", "made_by", "causes", "reason", "at",
                 "content_hash")


def _chunks(values: Sequence[Any]) -> list[list[Any]]:
    values = list(values)
    return [values[i:i + CHUNK] for i in range(0, len(values), CHUNK)]


class NoteStatements(Statements):
    """Notes' statements on one connection (inside the caller's transaction)."""

    @classmethod
    def of(cls, tx: Any) -> "NoteStatements":
        """On a store's lifecycle transaction (`SQLLifecycle`)."""
        return cls(tx.conn, tx.d)

    def _json(self, value: Any) -> Any:
        return self.d.load_json(value)

    # -- reading ----------------------------------------------------------------------------

    def versions(self, ids: Sequence[str]) -> dict[str, list[Note]]:
        out: dict[str, list[Note]] = {}
        for chunk in _chunks(sorted(set(ids))):
            where, params = self._in("memory_id", chunk)
            for row in self._rows(f"SELECT {NOTE_COLUMNS} FROM notes WHERE {where} ORDER BY memory_id, version",
                                  params):
                out.setdefault(row[0], []).append(self._note(row))
        return out

    def heads(self, user_id: str, ids: Sequence[str]) -> dict[str, list[Note]]:
        """Of every version of these notes of the user, only the two the lane reads: the
        latest that no neighbour shaped (no causes) and the latest, oldest first (one,
        when they are the same version or no version is unshaped)."""
        out: dict[str, list[Note]] = {}
        for chunk in _chunks(sorted(set(ids))):
            where, params = self._in("n.memory_id", chunk)
            for row in self._rows(
                    f"SELECT {', '.join('n.' + c for c in NOTE_COLUMNS.split(', '))} FROM notes n "
                    f"WHERE n.user_id = ? AND {where} AND (n.version = (SELECT max(m.version) FROM notes m "
                    "WHERE m.memory_id = n.memory_id) OR n.version = (SELECT max(m.version) FROM notes m "
                    "WHERE m.memory_id = n.memory_id AND m.causes = {json})) ORDER BY n.memory_id, n.version",
                    [user_id, *params, "[]"]):
                out.setdefault(row[0], []).append(self._note(row))
        return out

    def _note(self, row: tuple) -> Note:
        memory_id, version, keywords, tags, context, made_by, causes, reason, at, digest = row
        return Note(memory_id, int(version), tuple(self._json(keywords)), tuple(self._json(tags)), context, made_by,
                    tuple(self._json(causes)), reason, at, digest)

    def relations(self, ids: Sequence[str]) -> list[Relation]:
        out: dict[tuple[str, str], Relation] = {}
        for chunk in _chunks(sorted(set(ids))):
            for column in ("src", "dst"):
                where, params = self._in(column, chunk)
                for src, dst, reason, strength in self._rows(
                        f"SELECT src, dst, reason, strength FROM links WHERE type = 'relates_to' AND {where}", params):
                    out[(src, dst)] = Relation(src, dst, reason or "", float(strength or 0.0))
        return [out[key] for key in sorted(out)]

    def mark(self) -> int:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (MARK,))
        return int(rows[0][0]) if rows else 0

    def work(self, limit: int) -> NoteWork | None:
        """The next user's memories without a note (past the watermark) or queued."""
        queued = self._rows("SELECT memory_id, user_id FROM note_queue ORDER BY at, memory_id LIMIT ?", (limit,))
        mark = self.mark()
        fresh = self._rows(
            "SELECT r.rowid, r.id, r.user_id FROM records r WHERE r.rowid > ? AND NOT EXISTS "
            "(SELECT 1 FROM notes n WHERE n.memory_id = r.id) ORDER BY r.rowid LIMIT ?", (max(0, mark - WINDOW), limit))
        if not queued and not fresh:
            top = self._rows("SELECT max(rowid) FROM records")[0][0] or 0
            return NoteWork("", (), (), top) if top > mark else None
        user = queued[0][1] if queued else fresh[0][2]
        advance = mark
        for rowid, _, owner in fresh:  # the watermark passes this user's rows up to another user's first
            if owner != user:
                break
            advance = max(advance, rowid)
        return NoteWork(user, tuple(i for i, u in queued if u == user), tuple(i for _, i, u in fresh if u == user),
                        advance)

    # -- writing ----------------------------------------------------------------------------

    def add_version(self, memory_id: str, user_id: str, keywords: Sequence[str], tags: Sequence[str], context: str,
                    *, made_by: str, causes: Sequence[str], reason: str, at: str, digest: str) -> int:
        last = self._rows("SELECT max(version) FROM notes WHERE memory_id = ?", (memory_id,))[0][0] or 0
        self._run(
            "INSERT INTO notes (memory_id, version, user_id, keywords, tags, context, content_hash, made_by, causes, "
            "reason, at) VALUES (?, ?, ?, {json}, {json}, ?, ?, ?, {json}, ?, ?)",
            (memory_id, last + 1, user_id, json.dumps(list(keywords)), json.dumps(list(tags)), context, digest,
             made_by, json.dumps(sorted(causes)), reason, at))
        return last + 1

    def history_event(self, memory_id: str, reason: str, *, at: str, actor: str | None) -> None:
        """A line in the memory's history (event 'note'), for a current, active memory
        only: a retired or archived one's latest event must stay the one that changed it."""
        rows = self._rows("SELECT user_id, content_hash FROM records WHERE id = ? AND valid_to IS NULL AND "
                          "state = 'active'", (memory_id,))
        if not rows:
            return
        last = self._rows("SELECT max(version) FROM versions WHERE memory_id = ?", (memory_id,))[0][0] or 0
        self._run("INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, reason) "
                  "VALUES (?, ?, ?, 'note', NULL, ?, ?, ?, ?)", (memory_id, last + 1, rows[0][0], rows[0][1], at,
                                                                 actor, reason))

    def link(self, user_id: str, relation: Relation) -> None:
        """A `relates_to` link between two memories of the user (never across users)."""
        self._run(
            "INSERT INTO links (src, type, dst, reason, strength) SELECT ?, 'relates_to', ?, ?, ? "
            "WHERE EXISTS (SELECT 1 FROM records WHERE id = ? AND user_id = ?) "
            "AND EXISTS (SELECT 1 FROM records WHERE id = ? AND user_id = ?) "
            "ON CONFLICT (src, type, dst) DO UPDATE SET reason = excluded.reason, strength = excluded.strength",
            (relation.src, relation.dst, relation.reason, relation.strength, relation.src, user_id, relation.dst,
             user_id))

    def queue(self, user_id: str, ids: Sequence[str], *, reason: str, at: str) -> None:
        for memory_id in dict.fromkeys(ids):
            self._run("INSERT INTO note_queue (memory_id, user_id, reason, at) SELECT ?, ?, ?, ? "
                      "WHERE EXISTS (SELECT 1 FROM records WHERE id = ? AND user_id = ?) "
                      "ON CONFLICT (memory_id) DO UPDATE SET reason = excluded.reason",
                      (memory_id, user_id, reason, at, memory_id, user_id))

    def take_back(self, user_id: str, ids: Sequence[str], *, at: str) -> set[str]:
        """Undo what `ids` gave other memories: their `relates_to` links go, and every
        note version they shaped, with every later version of that note (built on it);
        the notes so changed are queued to be derived again. Returns those memories."""
        gone = set(ids)
        if not gone:
            return set()
        affected: dict[str, int] = {}  # memory -> first version to drop
        for chunk in _chunks(sorted(gone)):
            statement, params = self._caused_by(user_id, chunk)
            for memory_id, version in self._rows(statement, params):
                if memory_id not in gone:
                    affected[memory_id] = min(affected.get(memory_id, version), version)
        partners = {r.other(m) for r in self.relations(sorted(gone)) for m in (r.src, r.dst) if m in gone} - gone
        for chunk in _chunks(sorted(gone)):
            for column in ("src", "dst"):
                where, params = self._in(column, chunk)
                self._run(f"DELETE FROM links WHERE type = 'relates_to' AND {where}", params)
        for memory_id, version in sorted(affected.items()):
            self._run("DELETE FROM notes WHERE memory_id = ? AND version >= ?", (memory_id, version))
        changed = set(affected) | partners
        self.queue(user_id, sorted(changed), reason="re-derive", at=at)
        return changed

    def _caused_by(self, user_id: str, ids: Sequence[str]) -> tuple[str, list[Any]]:
        """The first version of each note of the user that one of `ids` shaped (has among
        its causes)."""
        if self.d.name == "postgresql":
            return ("SELECT memory_id, min(version) FROM notes n WHERE user_id = ? AND EXISTS (SELECT 1 FROM "
                    "jsonb_array_elements_text(n.causes) c WHERE c = ANY(?)) GROUP BY memory_id"), [user_id, list(ids)]
        marks = ",".join("?" * len(ids))
        # Every note of the user is looked at: json_each only for those whose causes' text
        # holds one of the ids as written (an id of plain characters is written as is).
        # The exact test stays json_each's.
        plain = all(_PLAIN_ID.fullmatch(i) for i in ids)
        near = f" AND n.causes != '[]' AND ({' OR '.join(['instr(n.causes, ?) > 0'] * len(ids))})" if plain else ""
        return ("SELECT memory_id, min(version) FROM notes n WHERE user_id = ?" + near + " AND EXISTS (SELECT 1 FROM "
                f"json_each(n.causes) c WHERE c.value IN ({marks})) GROUP BY memory_id"), [
                    user_id, *([f'"{i}"' for i in ids] if plain else []), *ids]

    def erase(self, rows: Sequence[tuple[str, str]], *, at: str) -> None:
        """Records (id, user id) are being erased: their notes and queue entries go, and
        what they gave other notes is taken back (`take_back`)."""
        by_user: dict[str, list[str]] = {}
        for memory_id, user_id in rows:
            by_user.setdefault(user_id, []).append(memory_id)
        for user_id, ids in sorted(by_user.items()):
            self.take_back(user_id, ids, at=at)
            for chunk in _chunks(ids):
                where, params = self._in("memory_id", chunk)
                self._run(f"DELETE FROM notes WHERE {where}", params)
                self._run(f"DELETE FROM note_queue WHERE {where}", params)

    def forget_user(self, user_id: str) -> None:
        self._run("DELETE FROM notes WHERE user_id = ?", (user_id,))
        self._run("DELETE FROM note_queue WHERE user_id = ?", (user_id,))

    def write(self, user_id: str, batch: NotesBatch, *, at: str, actor: str | None) -> None:
        """A batch of the notes lane's work, in this transaction. What a memory erased or
        changed meanwhile would have shaped is not written: a note is only made for the
        text it was made from, a link only between memories that exist, an evolution
        only when all its causes still exist."""
        hashes = self._hashes(user_id, [*[m.memory_id for m in batch.made], *[e.memory_id for e in batch.evolved],
                               *(c for e in batch.evolved for c in e.causes), *batch.unlink])
        for memory_id in batch.unlink:
            if memory_id in hashes:
                self.take_back(user_id, [memory_id], at=at)
        current = {m: v[-1] for m, v in self.heads(user_id, [m.memory_id for m in batch.made]).items()}
        for made in batch.made:
            if hashes.get(made.memory_id) != made.content_hash:
                continue  # erased or changed since it was read: the queue has it again
            now = current.get(made.memory_id)
            if now is not None and now.content_hash == made.content_hash and not made.remade:
                continue  # another worker made it
            self.add_version(made.memory_id, user_id, made.draft.keywords, made.draft.tags, made.draft.context,
                             made_by=made.draft.made_by, causes=(), reason=made.reason, at=at,
                             digest=made.content_hash)
            if made.remade:
                self.history_event(made.memory_id, made.reason, at=at, actor=actor)
        for relation in batch.links:
            self.link(user_id, relation)
        latest = {m: v[-1] for m, v in self.heads(user_id, [e.memory_id for e in batch.evolved]).items()}
        for evolution in batch.evolved:
            if evolution.memory_id not in hashes or not all(c in hashes for c in evolution.causes):
                continue
            now, draft = latest.get(evolution.memory_id), evolution.draft
            if now is not None and (now.keywords, now.tags, now.context, now.causes) == (
                    draft.keywords, draft.tags, draft.context, tuple(sorted(evolution.causes))):
                continue  # another worker wrote it
            self.add_version(evolution.memory_id, user_id, evolution.draft.keywords, evolution.draft.tags,
                             evolution.draft.context, made_by=evolution.draft.made_by, causes=evolution.causes,
                             reason=evolution.reason, at=at, digest=hashes[evolution.memory_id])
            self.history_event(evolution.memory_id, evolution.reason, at=at, actor=actor)
        for chunk in _chunks(batch.dequeue):
            where, params = self._in("memory_id", chunk)
            self._run(f"DELETE FROM note_queue WHERE {where}", params)
        if batch.mark is not None and batch.mark > self.mark():
            self._run("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                      "excluded.value", (MARK, str(batch.mark)))

    def _hashes(self, user_id: str, ids: Sequence[str]) -> dict[str, str]:
        """The content hashes of these memories of the user that exist (locked against an
        erasure until this transaction ends)."""
        out = {}
        for chunk in _chunks(sorted(set(ids))):
            where, params = self._in("id", chunk)
            out.update(dict(self._rows(f"SELECT id, content_hash FROM records WHERE {self.d.unindexed('user_id')} = ? "
                                       f"AND {where} ORDER BY id"
                                       f"{self.d.share_lock}", [user_id, *params])))
        return out

    # -- moving -----------------------------------------------------------------------------

    def export(self, user_id: str) -> dict[str, Any]:
        notes = [[*row[:2], list(self._json(row[2])), list(self._json(row[3])), row[4], row[5],
                  list(self._json(row[6])), *row[7:]]
                 for row in self._rows(f"SELECT {NOTE_COLUMNS} FROM notes WHERE user_id = ? ORDER BY memory_id, "
                                       "version", (user_id,))]
        relations = [list(row) for row in self._rows(
            "SELECT l.src, l.dst, l.reason, l.strength FROM links l JOIN records r ON r.id = l.dst "
            "WHERE l.type = 'relates_to' AND r.user_id = ? ORDER BY l.src, l.dst", (user_id,))]
        queue = [list(row) for row in self._rows(
            "SELECT memory_id, reason, at FROM note_queue WHERE user_id = ? ORDER BY memory_id", (user_id,))]
        return {"notes": notes, "relations": relations, "note_queue": queue}

    def import_(self, user_id: str, data: dict[str, Any], rename: Callable[[str], str] = str) -> None:
        """What `export` gave, for the memories of `user_id` that are here (ids through
        `rename`); notes a memory already has here are left as they are."""
        present = set()
        named = {rename(row[0]) for row in data.get("notes", [])}
        for chunk in _chunks(sorted(named)):
            where, params = self._in("id", chunk)
            present.update(r[0] for r in self._rows(f"SELECT id FROM records WHERE {self.d.unindexed('user_id')} = ? "
                                                    f"AND {where}",
                                                    [user_id, *params]))
        had = set(self.versions(sorted(present)))
        for row in data.get("notes", []):
            values = dict(zip(EXPORT_FIELDS, row))
            memory_id = rename(values["memory_id"])
            if memory_id not in present or memory_id in had:
                continue
            self._run(
                "INSERT INTO notes (memory_id, version, user_id, keywords, tags, context, content_hash, made_by, "
                "causes, reason, at) VALUES (?, ?, ?, {json}, {json}, ?, ?, ?, {json}, ?, ?) "
                "ON CONFLICT (memory_id, version) DO NOTHING",
                (memory_id, int(values["version"]), user_id, json.dumps(values["keywords"]),
                 json.dumps(values["tags"]), values["context"], values["content_hash"], values["made_by"],
                 json.dumps(sorted(rename(c) for c in values["causes"])), values["reason"], values["at"]))
        for src, dst, reason, strength in data.get("relations", []):
            self.link(user_id, Relation(rename(src), rename(dst), reason or "", float(strength or 0.0)))
        for memory_id, reason, at in data.get("note_queue", []):
            self.queue(user_id, [rename(memory_id)], reason=reason, at=at)


class SQLNotes:
    """The notes methods of a store (stores.base.Notes) over `NoteStatements`; the store
    provides `_write(work)`, `_read()` and `_lifecycle(conn)`, as for `SQLJobs`."""

    _write: Callable[..., Any]
    _read: Callable[..., Any]
    _lifecycle: Callable[[Any], Any]

    def _notes(self, conn: Any) -> NoteStatements:
        return NoteStatements.of(self._lifecycle(conn))

    def note_work(self, limit: int) -> NoteWork | None:
        """The next user's memories that need a note made, again or re-derived."""
        with self._read() as conn:
            return self._notes(conn).work(limit)

    def notes(self, user_id: str, ids: Sequence[str]) -> dict[str, list[Note]]:
        """Every version of these memories' notes, oldest first (the user's only)."""
        with self._read() as conn:
            owned = self._owned(conn, user_id, ids)
            return self._notes(conn).versions(sorted(owned))

    def note_heads(self, user_id: str, ids: Sequence[str]) -> dict[str, list[Note]]:
        """Of these memories' notes (the user's only), the versions the notes lane reads:
        the latest made from the memory alone (no causes) and the latest, oldest first."""
        with self._read() as conn:
            return self._notes(conn).heads(user_id, ids)

    def relations(self, user_id: str, ids: Sequence[str]) -> list[Relation]:
        """The `relates_to` links touching these memories of the user, either way."""
        with self._read() as conn:
            owned = self._owned(conn, user_id, ids)
            return self._notes(conn).relations(sorted(owned))

    def event_siblings(self, user_id: str, ids: Sequence[str]) -> dict[str, set[str]]:
        """For each memory, the others derived from one of the turns it was derived from."""
        out: dict[str, set[str]] = {}
        with self._read() as conn:
            tx = self._lifecycle(conn)
            owned = self._owned(conn, user_id, ids)
            for chunk in _chunks(sorted(owned)):
                where, params = tx.d.in_list("a.src", chunk)
                for src, other in conn.execute(
                        f"SELECT DISTINCT a.src, b.src FROM links a JOIN links b ON b.dst = a.dst AND "
                        f"b.type = 'derived_from' AND b.src <> a.src WHERE a.type = 'derived_from' AND {where}",
                        params).fetchall():
                    out.setdefault(src, set()).add(other)
        return out

    def note_vectors(self, user_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these memories of the user."""
        out: dict[str, np.ndarray] = {}
        with self._read() as conn:
            tx = self._lifecycle(conn)
            for chunk in _chunks(sorted(set(ids))):
                where, params = tx.d.in_list("r.id", chunk)
                mark = tx.d.mark
                if tx.d.name == "postgresql":
                    rows = conn.execute(f"SELECT r.id, r.vec FROM records r WHERE r.user_id = {mark} AND {where} "
                                        "AND r.vec IS NOT NULL", [user_id, *params]).fetchall()
                    out.update({i: np.asarray(v.to_numpy(), dtype=np.float32) for i, v in rows})
                else:
                    rows = conn.execute(f"SELECT r.id, v.vec FROM records r JOIN vectors v ON v.record_rowid = "
                                        f"r.rowid WHERE +r.user_id = {mark} AND {where}", [user_id, *params]).fetchall()
                    out.update({i: np.frombuffer(v, dtype=np.float32) for i, v in rows})
        return out

    def write_notes(self, user_id: str, batch: NotesBatch, *, at: str, actor: str | None) -> None:
        """Write a batch of the notes lane's work in one transaction (NoteStatements.write)."""
        self._write(lambda conn: self._notes(conn).write(user_id, batch, at=at, actor=actor))

    def queue_notes(self, user_id: str, ids: Sequence[str], *, reason: str, at: str) -> None:
        """Ask for these memories' notes to be made again (their text changed)."""
        self._write(lambda conn: self._notes(conn).queue(user_id, ids, reason=reason, at=at))

    def _owned(self, conn: Any, user_id: str, ids: Sequence[str]) -> set[str]:
        tx = self._lifecycle(conn)
        found: set[str] = set()
        for chunk in _chunks(sorted(set(ids))):
            where, params = tx.d.in_list("id", chunk)
            found.update(r[0] for r in conn.execute(
                f"SELECT id FROM records WHERE {tx.d.unindexed('user_id')} = {tx.d.mark} AND {where}",
                [user_id, *params]).fetchall())
        return found
