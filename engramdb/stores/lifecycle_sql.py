"""The lifecycle's statements, written once for SQLite and PostgreSQL over a small
dialect (placeholders, lists, JSON, row locks). A store hands `SQLLifecycle` its open
write transaction and the two things that are its own: how to read records on that
connection and how to remove a record's rows from its indexes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..keys import content_hash
from ..lifecycle.engine import retired_entry
from ..lifecycle.policy import Derived, Link, Retired
from ..living.vitals import RETIRED_STATES
from ..types import Record, Scope
from . import thoughts_sql
from .base import DISTILL, REDERIVE, Job, JobOutcome, NewRecord
from .graph_sql import GraphStatements
from .notes_sql import NoteStatements
from .statements import Statements
from .vitals_sql import confirm_again

CHUNK = 500
REDERIVED = "re-derived from its sources"
JOB_FIELDS = ("user_id", "agent_id", "session_id", "record_ids", "state", "attempts", "error", "not_before",
              "created_at", "updated_at", "kind")
JOB_DEFAULTS = {"kind": DISTILL}  # what an export made before a field existed lacks
CAUSE_LINKS = {"supersede": "supersedes", "retract": "retracts"}  # a retirement's event -> its link's type


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends in these statements."""

    name: str
    mark: str  # "?" or "%s"
    lock: str  # appended to a SELECT that must lock its rows ("" where one writer holds the file)
    share_lock: str  # the same, for rows that must only not be deleted meanwhile
    claim_lock: str  # a job's row as a worker claims it: others skip it rather than wait
    json_mark: str  # a placeholder for a JSON value

    def sql(self, statement: str) -> str:
        return statement.replace("?", self.mark).replace("{json}", self.json_mark)

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        if self.name == "postgresql":
            return f"{column} = ANY({self.mark})", [list(values)]
        return f"{column} IN ({','.join(self.mark * 1 for _ in values)})", list(values)

    def load_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def unindexed(self, column: str) -> str:
        """`column` in a condition that must not choose the index: beside `id IN (...)`,
        SQLite takes `user_id = ?` for the index to use and walks every row of the user
        (the planner has no statistics), where the ids' own unique index finds the few."""
        return f"+{column}" if self.name == "sqlite" else column


SQLITE = Dialect("sqlite", "?", "", "", "", "?")
POSTGRES = Dialect("postgresql", "%s", " FOR UPDATE", " FOR KEY SHARE", " FOR UPDATE SKIP LOCKED", "%s::jsonb")


def exported_links(data: dict[str, Any]) -> list[tuple[str, str, str, Any, int]]:
    """(src, type, dst, sources, suffices) of what `export_derived` gave: its `links`, or
    the `derivations` (memory, turn, sources[, suffices]) of an export made before links."""
    out = [(src, type, dst, sources or [], int(suffices or 0)) for src, type, dst, sources, suffices in
           data.get("links", [])]
    out += [(row[0], "derived_from", row[1], row[2], int(row[3]) if len(row) > 3 else 0)
            for row in data.get("derivations", [])]
    return out


def chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    values = list(values)
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


class SQLLifecycle(Statements):
    """`lifecycle.LifecycleTx` over one open write transaction."""

    def __init__(self, conn: Any, dialect: Dialect, *, read: Callable[[Any, Sequence[str]], list[Record]],
                 remove_rows: Callable[[Any, list[str]], None]) -> None:
        super().__init__(conn, dialect)
        self._read = read
        self._remove_rows = remove_rows

    # -- links --------------------------------------------------------------------------

    def link(self, memory_id: str, source_id: str, *, suffices: bool = False) -> None:
        """Record that a memory was derived from a source (and which sources the source
        carried), if both exist; a link that suffices stays so."""
        self._run(
            "INSERT INTO links (src, type, dst, sources, suffices) SELECT ?, 'derived_from', id, sources, ? "
            "FROM records WHERE id = ? AND EXISTS (SELECT 1 FROM records WHERE id = ?) "
            "ON CONFLICT (src, type, dst) DO UPDATE SET suffices = "
            "CASE WHEN excluded.suffices = 1 THEN 1 ELSE links.suffices END",
            (memory_id, 1 if suffices else 0, source_id, memory_id),
        )

    def links_of(self, memory_ids: Sequence[str]) -> list[Link]:
        out = []
        for chunk in chunks(memory_ids):
            where, params = self._in("src", chunk)
            out += [Link(m, t, bool(s)) for m, t, s in self._rows(
                f"SELECT src, dst, suffices FROM links WHERE type = 'derived_from' AND {where} ORDER BY src, dst",
                params)]
        return out

    def derived_from_any(self, source_ids: Sequence[str]) -> list[Derived]:
        ids: list[str] = []
        for chunk in chunks(source_ids):
            where, params = self._in("dst", chunk)
            ids += [row[0] for row in self._rows(
                f"SELECT DISTINCT src FROM links WHERE type = 'derived_from' AND {where}", params)]
        ids = sorted(set(ids))
        if not ids:
            return []
        links: dict[str, list[Link]] = {}
        for link in self.links_of(ids):
            links.setdefault(link.memory_id, []).append(link)
        return [
            Derived(r.id, r.kind, Scope(r.user_id, r.agent_id, r.session_id), tuple(links.get(r.id, ())),
                    current=r.valid_to is None)
            for r in self._read(self.conn, ids)
        ]

    def narrow_sources(self, memory_ids: Sequence[str]) -> None:
        for memory_id in memory_ids:
            groups = [self.d.load_json(row[0]) for row in self._rows(
                "SELECT sources FROM links WHERE src = ? AND type = 'derived_from' ORDER BY dst", (memory_id,))]
            if groups:
                sources = list(dict.fromkeys(s for group in groups for s in group))
                self._run("UPDATE records SET sources = {json} WHERE id = ?", (json.dumps(sources), memory_id))

    def unlink(self, memory_ids: Sequence[str], source_id: str) -> None:
        for chunk in chunks(memory_ids):
            where, params = self._in("memory_id", chunk)
            self._run(f"DELETE FROM links WHERE type = 'derived_from' AND dst = ? AND {where}", [source_id, *params])

    # -- erasure and history ------------------------------------------------------------

    def _last_versions(self, ids: Sequence[str]) -> dict[str, tuple[int, str, str | None]]:
        """Each memory's latest version: (number, event, reason)."""
        out = {}
        for chunk in chunks(ids):
            where, params = self._in("v.memory_id", chunk)
            out.update({m: (n, e, r) for m, n, e, r in self._rows(
                f"SELECT v.memory_id, v.version, v.event, v.reason FROM versions v WHERE {where} "
                "AND v.version = (SELECT max(w.version) FROM versions w WHERE w.memory_id = v.memory_id)", params)})
        return out

    def _add_versions(self, rows: Sequence[tuple[str, str, str, str, str, str | None, str | None]]) -> None:
        """Versions (memory id, user id, event, content hash, at, actor, reason), each
        numbered after the memory's latest."""
        last = self._last_versions([row[0] for row in rows])
        for memory_id, user_id, event, digest, at, actor, reason in rows:
            number = last.get(memory_id, (0, "", None))[0] + 1
            last[memory_id] = (number, event, reason)
            self._run(
                "INSERT INTO versions (memory_id, version, user_id, event, text, content_hash, at, actor, reason) "
                "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?)",
                (memory_id, number, user_id, event, digest, at, actor, reason),
            )

    def erase_records(self, ids: Sequence[str], *, at: str, actor: str | None, reason: str | None) -> None:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return
        found = []
        for chunk in chunks(ids):
            where, params = self._in("id", chunk)
            found += self._rows(f"SELECT id, user_id, text FROM records WHERE {where} ORDER BY id{self.d.lock}", params)
        NoteStatements.of(self).erase([(row[0], row[1]) for row in found], at=at)  # before the links go
        for chunk in chunks(ids):
            where, params = self._in("memory_id", chunk)
            if reason is None:
                self._run(f"DELETE FROM versions WHERE {where}", params)
            else:
                self._run(f"UPDATE versions SET text = NULL WHERE {where}", params)
            where, params = self._in("src", chunk)
            self._run(f"DELETE FROM links WHERE {where}", params)
            where, params = self._in("dst", chunk)
            self._run(f"DELETE FROM links WHERE {where}", params)
        self._remove_rows(self.conn, [row[0] for row in found])
        self._unqueue(ids, {row[1] for row in found})
        if reason is not None:
            self._add_versions([(id, user_id, "delete", content_hash(text), at, actor, reason)
                                for id, user_id, text in found])

    def _unqueue(self, ids: Sequence[str], users: set[str]) -> None:
        """Queued jobs name erased records no more; one left with none is dropped. Their
        recorded errors go too (an extractor's error may quote what it read)."""
        erased = set(ids)
        for user_id in sorted(users):
            for job_id, record_ids in self._rows("SELECT id, record_ids FROM jobs WHERE user_id = ?", (user_id,)):
                named = list(self.d.load_json(record_ids))
                if erased.isdisjoint(named):
                    continue
                left = [i for i in named if i not in erased]
                if left:
                    self._run("UPDATE jobs SET record_ids = {json}, error = NULL WHERE id = ?",
                              (json.dumps(left), job_id))
                else:
                    self._run("DELETE FROM jobs WHERE id = ?", (job_id,))

    def outdate(self, ids: Sequence[str], *, at: str, actor: str | None, reason: str) -> None:
        self._retire(ids, "outdate", at=at, actor=actor, reason=reason, valid_to=at)

    def _retire(self, ids: Sequence[str], event: str, *, at: str, actor: str | None, reason: str,
                valid_to: str, causes: Sequence[str] = ()) -> list[str]:
        """Current memories among `ids` stop being true at `valid_to`, linked to what
        retires them (supersedes / retracts); returns those retired."""
        rows = []
        for chunk in chunks(ids):
            where, params = self._in("id", chunk)
            rows += self._rows(
                f"SELECT id, user_id, content_hash FROM records WHERE {where} AND valid_to IS NULL ORDER BY id"
                f"{self.d.lock}", params)
        for id, _, _ in rows:
            self._run("UPDATE records SET valid_to = ?, expired_at = ?, updated_at = ?, state = ? WHERE id = ?",
                      (valid_to, at, at, RETIRED_STATES[event], id))
            for cause in causes:
                self._run("INSERT INTO links (src, type, dst) VALUES (?, ?, ?) ON CONFLICT (src, type, dst) DO NOTHING",
                          (cause, CAUSE_LINKS[event], id))
        self._add_versions([(id, user_id, event, digest, at, actor, reason) for id, user_id, digest in rows])
        thoughts_sql.sources_retired(self, [row[0] for row in rows], event, at=at, actor=actor)
        return [row[0] for row in rows]

    def retired_for(self, user_id: str, causes: set[str]) -> list[Retired]:
        """Retired memories that one of `causes` supersedes or retracts, each with all that
        retires it. PostgreSQL: each is locked, then its causes read again, so that of two
        erasures of a memory's last two causes the second sees the first."""
        wanted: set[str] = set()
        for chunk in chunks(sorted(causes)):
            where, params = self._in("src", chunk)
            wanted.update(row[0] for row in self._rows(
                f"SELECT dst FROM links WHERE type IN ('supersedes', 'retracts') AND {where}", params))
        if not wanted:
            return []
        if self.d.lock:
            for chunk in chunks(sorted(wanted)):
                where, params = self._in("id", chunk)
                self._rows(f"SELECT id FROM records WHERE {where} ORDER BY id{self.d.lock}", params)
        by_memory: dict[str, set[str]] = {}
        for chunk in chunks(sorted(wanted)):
            where, params = self._in("dst", chunk)
            for dst, src in self._rows(
                    f"SELECT dst, src FROM links WHERE type IN ('supersedes', 'retracts') AND {where}", params):
                by_memory.setdefault(dst, set()).add(src)
        latest = self._last_versions(sorted(by_memory))
        retired = [r for r in self._read(self.conn, sorted(by_memory))
                   if r.valid_to is not None and latest.get(r.id, (0, "", None))[1] in ("supersede", "retract")]
        return [retired_entry(r, frozenset(by_memory[r.id])) for r in retired]

    def holding(self, ids: set[str]) -> set[str]:
        if not ids:
            return set()
        present = []
        for chunk in chunks(sorted(ids)):
            where, params = self._in("id", chunk)
            present += [row[0] for row in self._rows(f"SELECT id FROM records WHERE {where}", params)]
        latest = self._last_versions(present)
        return {id for id in present if latest.get(id, (0, "", None))[1] != "outdate"}

    def slot_current(self, user_id: str, slots: Sequence[str]) -> list[Record]:
        if not slots:
            return []
        ids = []
        for chunk in chunks(slots):
            where, params = self._in("slot", chunk)
            ids += [row[0] for row in self._rows(
                f"SELECT id FROM records WHERE user_id = ? AND {where} AND valid_to IS NULL", [user_id, *params])]
        return self._read(self.conn, ids)

    def reinstate(self, ids: Sequence[str], *, at: str, actor: str | None, reason: str) -> None:
        rows = []
        for chunk in chunks(ids):
            where, params = self._in("id", chunk)
            rows += self._rows(f"SELECT id, user_id, content_hash FROM records WHERE {where} ORDER BY id", params)
        for id, _, _ in rows:
            self._run("UPDATE records SET valid_to = NULL, expired_at = NULL, updated_at = ?, state = 'active' "
                      "WHERE id = ?", (at, id))
            self._run("DELETE FROM links WHERE dst = ? AND type IN ('supersedes', 'retracts')", (id,))
        self._add_versions([(id, user_id, "reinstate", digest, at, actor, reason) for id, user_id, digest in rows])
        thoughts_sql.sources_reinstated(self, [row[0] for row in rows], at=at, actor=actor)

    def derived_of(self, turn_ids: Sequence[str]) -> list[tuple[Record, str]]:
        """The memories already derived from these turns, each with its latest event."""
        ids: list[str] = []
        for chunk in chunks(turn_ids):
            where, params = self._in("dst", chunk)
            ids += [row[0] for row in self._rows(
                f"SELECT DISTINCT src FROM links WHERE type = 'derived_from' AND {where}", params)]
        records = self._read(self.conn, sorted(set(ids)))
        events = self.latest_events([r.id for r in records])
        return [(r, events.get(r.id, "add")) for r in records]

    def latest_events(self, ids: Sequence[str]) -> dict[str, str]:
        return {id: event for id, (_, event, _) in self._last_versions(ids).items()}

    # -- jobs ---------------------------------------------------------------------------

    def complete_job(self, job: Job, outcome: JobOutcome, insert: Callable[[Any, list[NewRecord], np.ndarray], None],
                     *, at: str, actor: str | None) -> list[str]:
        """Write a job's memories, retirements, revivals and confirmations and end the job,
        in this transaction; returns the ids written. A job that is gone (its scope was
        forgotten) writes nothing. A memory one of whose turns was erased meanwhile is not
        written (its text may quote the erased turn): its live turns are distilled again."""
        present = []
        for job_id in job.ids:
            present += self._rows(f"SELECT id FROM jobs WHERE id = ?{self.d.lock}", (job_id,))
        if not present:
            return []
        live: set[str] = set()
        named = dict.fromkeys([*job.record_ids, *(t for rec in outcome.inserts for t in rec.derived_from),
                               *(t for turns in outcome.confirmations.values() for t in turns)])
        for chunk in chunks(sorted(named)):
            where, params = self._in("id", chunk)
            live.update(row[0] for row in self._rows(
                f"SELECT id FROM records WHERE {where} ORDER BY id{self.d.share_lock}", params))
        keep = [i for i, rec in enumerate(outcome.inserts) if all(t in live for t in rec.derived_from)]
        again = {t: None for rec in outcome.inserts if not all(t in live for t in rec.derived_from)
                 for t in rec.derived_from if t in live}
        records = [outcome.inserts[i] for i in keep]
        vectors = np.ascontiguousarray(outcome.vectors, dtype=np.float32)
        insert(self.conn, records, vectors[keep] if keep else vectors[:0])
        for rec in records:
            for turn_id in rec.derived_from:
                self.link(rec.id, turn_id, suffices=(rec.id, turn_id) in outcome.sufficient)
        for retired in outcome.retirements:
            self._retire([retired.id], retired.event, at=at, actor=actor, reason=retired.reason,
                         valid_to=retired.valid_to, causes=retired.cause_ids())
        revive = [id for id, event in self.latest_events(outcome.revivals).items() if event == "outdate"]
        self.reinstate(revive, at=at, actor=actor, reason=REDERIVED)
        for memory_id, turn_ids in outcome.confirmations.items():
            if not self._rows(f"SELECT 1 FROM records WHERE id = ?{self.d.lock}", (memory_id,)):
                continue  # erased meanwhile: nothing to confirm
            for turn_id in turn_ids:
                if turn_id in live:
                    self.link(memory_id, turn_id, suffices=(memory_id, turn_id) in outcome.sufficient)
            self.narrow_sources([memory_id])
        kept = live | {rec.id for rec in records}  # a memory not written, or a turn erased, gets no edges
        GraphStatements.of(self).put(job.scope.user_id, [m for m in outcome.mentions if m.record_id in kept])
        if job.kind == DISTILL:  # said again by new turns (a re-derivation only says it again)
            confirm_again(self.conn, self.d, outcome.confirmations, at=at, actor=actor)
        if again:
            self.enqueue(job.scope, list(again), at=at, kind=REDERIVE)
        for job_id in job.ids:
            self._run("DELETE FROM jobs WHERE id = ?", (job_id,))
        return [rec.id for rec in records]

    def session_turns(self, scope: Scope, limit: int) -> list[str]:
        where, params = "user_id = ? AND session_id = ? AND kind = 'turn'", [scope.user_id, scope.session_id]
        if scope.agent_id is not None:
            where, params = where + " AND agent_id = ?", params + [scope.agent_id]
        # rowid breaks ties: the turns of a session often share one timestamp (issue 14)
        rows = self._rows(f"SELECT id FROM records WHERE {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                          [*params, limit])
        return [row[0] for row in reversed(rows)]

    def claim_job(self, *, now: str, lease_until: str, batch: int = 1) -> Job | None:
        """The oldest job that is ready (or whose worker's lease ran out: it died), leased
        until `lease_until`, with up to `batch - 1` later ready jobs of the same scope and
        kind (a backlog is distilled in fewer, larger rounds). Two workers never claim the
        same job: PostgreSQL skips a row another transaction holds; SQLite has one writer."""
        rows = self._rows(
            "SELECT id, user_id, agent_id, session_id, record_ids, attempts, kind, created_at FROM jobs "
            f"WHERE state IN ('pending', 'running') AND not_before <= ? ORDER BY id LIMIT 1{self.d.claim_lock}", (now,))
        if not rows:
            return None
        id, user_id, agent_id, session_id, record_ids, attempts, kind, created_at = rows[0]
        self._run("UPDATE jobs SET state = 'running', not_before = ?, attempts = attempts + 1, updated_at = ? "
                  "WHERE id = ?", (lease_until, now, id))
        named = list(self.d.load_json(record_ids))
        also: list[int] = []
        if batch > 1:
            same, params = ["user_id = ?", "kind = ?"], [user_id, kind]
            for column, value in (("agent_id", agent_id), ("session_id", session_id)):
                same.append(f"{column} IS NULL" if value is None else f"{column} = ?")
                params += [] if value is None else [value]
            more = self._rows(
                f"SELECT id, record_ids FROM jobs WHERE state = 'pending' AND not_before <= ? AND id > ? AND "
                f"{' AND '.join(same)} ORDER BY id LIMIT ?{self.d.claim_lock}", [now, id, *params, batch - 1])
            for other, ids in more:
                self._run("UPDATE jobs SET state = 'running', not_before = ?, attempts = attempts + 1, "
                          "updated_at = ? WHERE id = ?", (lease_until, now, other))
                also.append(other)
                named += [i for i in self.d.load_json(ids) if i not in named]
        return Job(id, Scope(user_id, agent_id, session_id), named, attempts + 1, kind, created_at, tuple(also))

    def fail_job(self, job_ids: Sequence[int], error: str, *, at: str, retry_at: str | None) -> None:
        """A failed attempt: retried at `retry_at`, or parked as failed when None."""
        for job_id in job_ids:
            self._run("UPDATE jobs SET state = ?, error = ?, not_before = ?, updated_at = ? WHERE id = ?",
                      ("pending" if retry_at else "failed", error[:1000], retry_at or at, at, job_id))

    def job_stats(self, user_id: str | None = None, *, now: str | None = None) -> dict[str, Any]:
        """Jobs by state; with `now`, also how many are `ready` (running, or pending and
        due: not waiting out a retry backoff)."""
        where, params = ("WHERE user_id = ?", [user_id]) if user_id is not None else ("", [])
        also = "AND" if where else "WHERE"
        rows = self._rows(f"SELECT state, count(*), min(created_at) FROM jobs {where} GROUP BY state", params)
        ready = None
        if now is not None:
            ready = self._rows(f"SELECT count(*) FROM jobs {where} {also} "
                               "(state = 'running' OR (state = 'pending' AND not_before <= ?))", [*params, now])[0][0]
        errors = self._rows(f"SELECT id, error FROM jobs {where} {also} error IS NOT NULL ORDER BY id DESC LIMIT 5",
                            params)
        counts = {state: n for state, n, _ in rows}
        return {
            "pending": counts.get("pending", 0), "running": counts.get("running", 0),
            "failed": counts.get("failed", 0), **({"ready": ready} if ready is not None else {}),
            "oldest": min((oldest for _, _, oldest in rows), default=None),
            "oldest_waiting": min((oldest for state, _, oldest in rows if state in ("pending", "running")),
                                  default=None),
            "recent_errors": [{"job": job_id, "error": error} for job_id, error in errors],
        }

    def release_job(self, job_ids: Sequence[int], *, at: str) -> None:
        """Claimed jobs go back to the queue at once, their attempt not counted."""
        for job_id in job_ids:
            self._run("UPDATE jobs SET state = 'pending', not_before = ?, updated_at = ?, attempts = "
                      "CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE id = ? AND state = 'running'",
                      (at, at, job_id))

    def enqueue(self, scope: Scope, turn_ids: Sequence[str], *, at: str, kind: str = DISTILL) -> None:
        self._run(
            "INSERT INTO jobs (user_id, agent_id, session_id, record_ids, not_before, created_at, updated_at, kind) "
            "VALUES (?, ?, ?, {json}, ?, ?, ?, ?)",
            (scope.user_id, scope.agent_id, scope.session_id, json.dumps(list(turn_ids)), at, at, at, kind),
        )

    def export_jobs(self, user_id: str) -> list[dict[str, Any]]:
        rows = self._rows(f"SELECT {', '.join(JOB_FIELDS)} FROM jobs WHERE user_id = ? ORDER BY id", (user_id,))
        jobs = [dict(zip(JOB_FIELDS, row)) for row in rows]
        for job in jobs:
            job["record_ids"] = list(self.d.load_json(job["record_ids"]))
        return jobs

    def import_jobs(self, user_id: str, jobs: Sequence[dict[str, Any]]) -> None:
        """A user's queued jobs, only if the user has none here yet (a re-run copies them once)."""
        if not jobs or self._rows("SELECT 1 FROM jobs WHERE user_id = ? LIMIT 1", (user_id,)):
            return
        marks = ", ".join("{json}" if f == "record_ids" else "?" for f in JOB_FIELDS)
        for job in jobs:
            values = {**JOB_DEFAULTS, **job, "user_id": user_id}
            self._run(f"INSERT INTO jobs ({', '.join(JOB_FIELDS)}) VALUES ({marks})",
                      [json.dumps(values[f]) if f == "record_ids" else values[f] for f in JOB_FIELDS])


class SQLJobs:
    """The job-queue methods of a store whose statements are `SQLLifecycle`'s; the store
    provides `_write(work)`, `_read()` (a context manager giving a connection) and
    `_lifecycle(conn)`."""

    _write: Callable[..., Any]
    _read: Callable[..., Any]
    _lifecycle: Callable[[Any], SQLLifecycle]

    def claim_job(self, *, now: str, lease_until: str, batch: int = 1) -> Job | None:
        """The oldest ready job (with up to `batch - 1` more of its scope and kind), leased
        to the caller (SQLLifecycle.claim_job)."""
        return self._write(lambda conn: self._lifecycle(conn).claim_job(now=now, lease_until=lease_until,
                                                                         batch=batch))

    def release_job(self, job: Job, *, at: str) -> None:
        """Give a claimed job back to the queue (the process is stopping)."""
        self._write(lambda conn: self._lifecycle(conn).release_job(job.ids, at=at))

    def fail_job(self, job: Job, error: str, *, at: str, retry_at: str | None) -> None:
        """A failed attempt: retried at `retry_at`, or parked as failed when None."""
        self._write(lambda conn: self._lifecycle(conn).fail_job(job.ids, error, at=at, retry_at=retry_at))

    def job_stats(self, user_id: str | None = None, *, now: str | None = None) -> dict[str, Any]:
        """Jobs by state, and with `now` how many are ready (SQLLifecycle.job_stats)."""
        with self._read() as conn:
            return self._lifecycle(conn).job_stats(user_id, now=now)

    def derived_of(self, user_id: str, turn_ids: Sequence[str]) -> list[tuple[Record, str]]:
        """The memories already derived from these turns, each with its latest history event."""
        with self._read() as conn:
            return [(r, event) for r, event in self._lifecycle(conn).derived_of(turn_ids) if r.user_id == user_id]
