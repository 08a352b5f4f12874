"""The vitals' statements (living/vitals.py decides), written once for SQLite and
PostgreSQL over lifecycle_sql's dialect, inside a store's open transaction.

Vitals live in `vitals`, one narrow row per memory that was ever recalled, confirmed or
given feedback (no row: the defaults), keyed by the memory's id with ON DELETE CASCADE:
erasing a memory, by any path, erases its vitals in the same statement. Its state is
the `state` column of its record, changed here only between active and archived (the
lifecycle's retirements set the others), each change a history entry with its reason."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..living.vitals import (ACTIVE, ARCHIVE, ARCHIVED, REVIVE, UTILITY_RATE, VITAL_FIELDS, Candidate, Vitals,
                             confirmed_reason)
from .statements import Statements

RECALL, CONFIRM = "recall", "confirm"
_COUNTERS = {RECALL: "recalls", CONFIRM: "confirmations"}
CHUNK = 500


def chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    values = list(values)
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def confirm_again(conn: Any, dialect: Any, confirmations: Mapping[str, Sequence[str]], *, at: str,
                  actor: str | None) -> None:
    """Memories the same fact, said again by new turns, confirms: strength +1, and an
    archived one is active again."""
    if not confirmations:
        return
    tx = SQLVitals(conn, dialect)
    tx.reinforce({memory_id: 1 for memory_id in confirmations}, at=at, how=CONFIRM)
    tx.set_state([(m, confirmed_reason(turns)) for m, turns in confirmations.items()], ACTIVE, at=at, actor=actor)


class SQLVitals(Statements):
    # -- vitals -------------------------------------------------------------------------

    def reinforce(self, counts: Mapping[str, int], *, at: str, how: str = RECALL) -> None:
        """Each memory was recalled (or confirmed) `count` times, last at `at`: strength
        +1 each time. Memories erased meanwhile are skipped."""
        counter = _COUNTERS[how]
        for memory_id, count in sorted(counts.items()):
            self._run(
                f"INSERT INTO vitals (memory_id, strength, last_recall, {counter}) SELECT id, 1 + ?, ?, ? "
                "FROM records WHERE id = ? ON CONFLICT (memory_id) DO UPDATE SET "
                "strength = vitals.strength + excluded.strength - 1, "
                "last_recall = CASE WHEN vitals.last_recall IS NULL OR excluded.last_recall > vitals.last_recall "
                f"THEN excluded.last_recall ELSE vitals.last_recall END, {counter} = vitals.{counter} + excluded.{counter}",
                (float(count), at, int(count), memory_id))

    def feedback(self, outcomes: Mapping[str, bool]) -> None:
        """Each memory was used (True) or not (False) by an answer: utility moves towards
        +1 or -1 (living.vitals.utility_after, in SQL)."""
        for memory_id, used in sorted(outcomes.items()):
            target = 1.0 if used else -1.0
            self._run(
                "INSERT INTO vitals (memory_id, utility, used, unused) SELECT id, ?, ?, ? FROM records WHERE id = ? "
                "ON CONFLICT (memory_id) DO UPDATE SET utility = vitals.utility + ? * (? - vitals.utility), "
                "used = vitals.used + excluded.used, unused = vitals.unused + excluded.unused",
                (UTILITY_RATE * target, int(used), int(not used), memory_id, UTILITY_RATE, target))

    def vitals(self, ids: Sequence[str]) -> dict[str, Vitals]:
        out = {}
        for chunk in chunks(sorted(set(ids))):
            where, params = self._in("memory_id", chunk)
            for row in self._rows(f"SELECT memory_id, {', '.join(VITAL_FIELDS)} FROM vitals WHERE {where}", params):
                out[row[0]] = _vitals(row)
        return out

    def write(self, items: Sequence[Vitals]) -> None:
        """Vitals as they were elsewhere (an import, a migration), for memories that exist."""
        for v in items:
            self._run(
                f"INSERT INTO vitals (memory_id, {', '.join(VITAL_FIELDS)}) SELECT id, ?, ?, ?, ?, ?, ?, ? "
                "FROM records WHERE id = ? ON CONFLICT (memory_id) DO NOTHING",
                (float(v.strength), v.last_recall, int(v.recalls), int(v.confirmations), float(v.utility),
                 int(v.used), int(v.unused), v.memory_id))

    # -- states -------------------------------------------------------------------------

    def set_state(self, changes: Sequence[tuple[str, str]], state: str, *, at: str, actor: str | None) -> list[str]:
        """Archive (state ARCHIVED) active current memories, or revive (ACTIVE) archived
        ones; each change a history entry ('archive' / 'revive') with its reason. Returns
        the ids changed (a memory in another state, or gone, is left as it is)."""
        if state not in (ACTIVE, ARCHIVED):
            raise ValueError(f"vitals move memories between active and archived, not to {state!r}")
        before, event = (ACTIVE, ARCHIVE) if state == ARCHIVED else (ARCHIVED, REVIVE)
        reasons = dict(changes)
        rows: list[tuple] = []
        for chunk in chunks(sorted(reasons)):
            where, params = self._in("id", chunk)
            rows += self._rows(
                f"SELECT id, user_id, content_hash FROM records WHERE {where} AND state = ? "
                f"ORDER BY id{self.d.lock}", [*params, before])
        changed = []
        for memory_id, user_id, digest in rows:
            self._run("UPDATE records SET state = ? WHERE id = ?", (state, memory_id))
            last = self._rows("SELECT max(version) FROM versions WHERE memory_id = ?", (memory_id,))[0][0] or 0
            self._run(
                "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, reason) "
                "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?)",
                (memory_id, last + 1, user_id, event, digest, at, actor, reasons[memory_id]))
            changed.append(memory_id)
        return changed

    def archived_matching(self, user_id: str, content_hashes: Sequence[str]) -> list[str]:
        """Archived memories of a user with one of these texts (by content hash)."""
        out: list[str] = []
        for chunk in chunks(sorted(set(content_hashes))):
            where, params = self._in("content_hash", chunk)
            out += [row[0] for row in self._rows(
                f"SELECT id FROM records WHERE user_id = ? AND state = 'archived' AND {where} ORDER BY id",
                [user_id, *params])]
        return out

    def decay_candidates(self, *, before: str, after_rowid: int, limit: int) -> list[tuple[int, Candidate]]:
        """Active current derived memories not recalled since `before`, in rowid order
        from `after_rowid` (a page of the sweep)."""
        rows = self._rows(
            "SELECT r.rowid, r.id, r.kind, r.state, r.recorded_at, coalesce(v.strength, 1), v.last_recall "
            "FROM records r LEFT JOIN vitals v ON v.memory_id = r.id WHERE r.rowid > ? AND r.kind != 'turn' "
            "AND r.state = 'active' AND coalesce(v.last_recall, r.recorded_at) < ? "
            "ORDER BY r.rowid LIMIT ?", (after_rowid, before, limit))
        return [(row[0], Candidate(row[1], row[2], row[3], row[4], float(row[5]), row[6])) for row in rows]


def _vitals(row: Sequence[Any]) -> Vitals:
    memory_id, strength, last_recall, recalls, confirmations, utility, used, unused = row
    return Vitals(memory_id, float(strength), last_recall, int(recalls), int(confirmations), float(utility),
                  int(used), int(unused))


class SQLVitalSigns:
    """The store methods of `base.VitalSigns`, for a store whose transactions are
    `_write(work)` and `_read()` (a context manager giving a connection), in the dialect
    `_vitals_dialect`."""

    _write: Any
    _read: Any
    _vitals_dialect: Any

    def reinforce(self, counts: Mapping[str, int], *, at: str, how: str = RECALL) -> None:
        """Recalled (or confirmed) memories, each `count` times, last at `at`."""
        if counts:
            self._write(lambda conn: SQLVitals(conn, self._vitals_dialect).reinforce(counts, at=at, how=how))

    def record_feedback(self, outcomes: Mapping[str, bool]) -> None:
        """Memories an answer used (True) or did not use (False): their utility."""
        if outcomes:
            self._write(lambda conn: SQLVitals(conn, self._vitals_dialect).feedback(outcomes))

    def vitals(self, ids: Sequence[str]) -> dict[str, Vitals]:
        """The vitals of those of `ids` that have any (the others have the defaults)."""
        if not ids:
            return {}
        with self._read() as conn:
            return SQLVitals(conn, self._vitals_dialect).vitals(ids)

    def set_state(self, changes: Sequence[tuple[str, str]], state: str, *, at: str,
                  actor: str | None) -> list[str]:
        """Archive or revive memories, (id, reason) each (SQLVitals.set_state)."""
        if not changes:
            return []
        return self._write(lambda conn: SQLVitals(conn, self._vitals_dialect).set_state(changes, state, at=at,
                                                                                         actor=actor))

    def archived_matching(self, user_id: str, content_hashes: Sequence[str]) -> list[str]:
        if not content_hashes:
            return []
        with self._read() as conn:
            return SQLVitals(conn, self._vitals_dialect).archived_matching(user_id, content_hashes)

    def decay_candidates(self, *, before: str, after_rowid: int, limit: int) -> list[tuple[int, Candidate]]:
        with self._read() as conn:
            return SQLVitals(conn, self._vitals_dialect).decay_candidates(before=before, after_rowid=after_rowid,
                                                                         limit=limit)
