"""The statements of thoughts (living/thoughts.py), written once for SQLite and
PostgreSQL over the lifecycle's dialect and its open write transaction
(`lifecycle_sql.SQLLifecycle`, here `tx`).

- A thought follows its sources: when a memory it rests on (`derived_from`) stops being
  current (superseded, retracted, outdated, merged, or a thought itself retired), the
  thought is retired with it, event "retire", its reason naming the source by id; when
  every source is current again, it is reinstated. Erasure needs nothing here: the
  lifecycle's cascade erases a thought with any erased source (no link of a thought
  suffices alone).
- Merging: the surviving thought takes every `derived_from` link of the absorbed ones,
  which are retired with event "merge", "merged into <id>".
- Reflection gathers the new turns of a scope in one job of state "gathering" (not
  pending: neither claimed nor counted as backlog) until it names `every` of them; then
  it is pending, and the runner takes it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..types import Scope

if TYPE_CHECKING:
    from .lifecycle_sql import SQLLifecycle

THOUGHT = "thought"
RETIRE, MERGE = "retire", "merge"
GATHERING = "gathering"
SOURCES_CURRENT = "its sources are current again"
RETIRED_WORDS = {"supersede": "superseded", "retract": "retracted", "outdate": "outdated", MERGE: "merged",
                 RETIRE: "retired"}
CHUNK = 500


def merged_into(memory_id: str) -> str:
    return f"merged into {memory_id}"


def _chunks(values: Sequence[Any]) -> list[list[Any]]:
    values = list(values)
    return [values[i:i + CHUNK] for i in range(0, len(values), CHUNK)]


def _thoughts_on(tx: "SQLLifecycle", source_ids: Sequence[str], *, current: bool) -> dict[str, set[str]]:
    """Thoughts resting on any of these sources (current ones, or retired ones), each with
    those of the sources it rests on."""
    out: dict[str, set[str]] = {}
    state = "r.valid_to IS NULL" if current else "r.valid_to IS NOT NULL"
    for chunk in _chunks(sorted(set(source_ids))):
        where, params = tx._in("l.dst", chunk)
        for src, dst in tx._rows(
                "SELECT l.src, l.dst FROM links l JOIN records r ON r.id = l.src WHERE l.type = 'derived_from' "
                f"AND r.kind = '{THOUGHT}' AND {state} AND {where} ORDER BY l.src, l.dst", params):
            out.setdefault(src, set()).add(dst)
    return out


def _end(tx: "SQLLifecycle", reasons: dict[str, str], event: str, *, at: str, actor: str | None) -> list[str]:
    """Retire current thoughts (`id -> reason`) with `event`; returns those retired."""
    rows = []
    for chunk in _chunks(sorted(reasons)):
        where, params = tx._in("id", chunk)
        rows += tx._rows(f"SELECT id, user_id, content_hash FROM records WHERE {where} AND valid_to IS NULL "
                         f"ORDER BY id{tx.d.lock}", params)
    for id, _, _ in rows:
        tx._run("UPDATE records SET valid_to = ?, expired_at = ?, updated_at = ? WHERE id = ?", (at, at, at, id))
    tx._add_versions([(id, user_id, event, digest, at, actor, reasons[id]) for id, user_id, digest in rows])
    return [row[0] for row in rows]


def sources_retired(tx: "SQLLifecycle", ids: Sequence[str], event: str, *, at: str, actor: str | None) -> None:
    """Memories `ids` were just retired by `event`: the current thoughts resting on them
    retire with them, and the thoughts resting on those in turn."""
    frontier, word = list(ids), RETIRED_WORDS.get(event, "retired")
    while frontier:
        found = _thoughts_on(tx, frontier, current=True)
        reasons = {t: f"its source {', '.join(sorted(s))} was {word}" for t, s in found.items()}
        frontier, word = _end(tx, reasons, RETIRE, at=at, actor=actor), RETIRED_WORDS[RETIRE]


def sources_reinstated(tx: "SQLLifecycle", ids: Sequence[str], *, at: str, actor: str | None) -> None:
    """Memories `ids` are current again: a thought that their retirement retired is
    reinstated once every source it rests on is current (tx.reinstate, which comes back
    here for the thoughts resting on it)."""
    candidates = _thoughts_on(tx, ids, current=False)
    if not candidates:
        return
    events = tx.latest_events(sorted(candidates))
    retired = sorted(t for t in candidates if events.get(t) == RETIRE)
    if not retired:
        return
    not_current: set[str] = set()
    for chunk in _chunks(retired):
        where, params = tx._in("l.src", chunk)
        not_current.update(row[0] for row in tx._rows(
            "SELECT l.src FROM links l JOIN records r ON r.id = l.dst WHERE l.type = 'derived_from' "
            f"AND r.valid_to IS NOT NULL AND {where}", params))
    again = [t for t in retired if t not in not_current]
    if again:
        tx.reinstate(again, at=at, actor=actor, reason=SOURCES_CURRENT)


def merge(tx: "SQLLifecycle", survivor: str, absorbed: Sequence[str], *, at: str, actor: str | None) -> list[str]:
    """`survivor` takes the sources of each current thought in `absorbed` (of its user),
    which is retired as merged into it; returns those merged."""
    rows = tx._rows(f"SELECT user_id FROM records WHERE id = ? AND kind = '{THOUGHT}' AND valid_to IS NULL{tx.d.lock}",
                    (survivor,))
    if not rows:
        return []
    user_id = rows[0][0]
    wanted = [a for a in dict.fromkeys(absorbed) if a != survivor]
    found: list[str] = []
    for chunk in _chunks(wanted):
        where, params = tx._in("id", chunk)
        found += [row[0] for row in tx._rows(
            f"SELECT id FROM records WHERE {where} AND user_id = ? AND kind = '{THOUGHT}' AND valid_to IS NULL",
            [*params, user_id])]
    if not found:
        return []
    for link in tx.links_of(found):
        tx.link(survivor, link.source_id)
    tx.narrow_sources([survivor])
    return _end(tx, {a: merged_into(survivor) for a in found}, MERGE, at=at, actor=actor)


def gather(tx: "SQLLifecycle", scope: Scope, record_ids: Sequence[str], *, kind: str, at: str, every: int) -> bool:
    """Add records to the scope's gathering job of `kind` (made if none); once it names
    `every` of them it becomes pending. True when it did."""
    same = ["user_id = ?", "kind = ?", "state = ?", "session_id IS NULL"]
    params: list[Any] = [scope.user_id, kind, GATHERING]
    same.append("agent_id IS NULL" if scope.agent_id is None else "agent_id = ?")
    params += [] if scope.agent_id is None else [scope.agent_id]
    rows = tx._rows(f"SELECT id, record_ids FROM jobs WHERE {' AND '.join(same)} ORDER BY id LIMIT 1{tx.d.lock}",
                    params)
    if rows:
        job_id, named = rows[0][0], list(tx.d.load_json(rows[0][1]))
        named += [i for i in record_ids if i not in named]
        tx._run("UPDATE jobs SET record_ids = {json}, updated_at = ? WHERE id = ?", (json.dumps(named), at, job_id))
    else:
        named = list(dict.fromkeys(record_ids))
        job_id = tx._rows("INSERT INTO jobs (user_id, agent_id, session_id, record_ids, state, not_before, "
                          "created_at, updated_at, kind) VALUES (?, ?, NULL, {json}, ?, ?, ?, ?, ?) RETURNING id",
                          (scope.user_id, scope.agent_id, json.dumps(named), GATHERING, at, at, at, kind))[0][0]
    if len(named) < every:
        return False
    tx._run("UPDATE jobs SET state = 'pending', not_before = ?, created_at = ?, updated_at = ? WHERE id = ?",
            (at, at, at, job_id))
    return True


class SQLThoughts:
    """The thought methods of a store whose statements are `SQLLifecycle`'s; the store
    provides `_write(work)` and `_lifecycle(conn)` (as for `SQLJobs`)."""

    _write: Callable[..., Any]
    _lifecycle: Callable[[Any], "SQLLifecycle"]

    def merge_thoughts(self, survivor: str, absorbed: Sequence[str], *, at: str, actor: str | None) -> list[str]:
        """`survivor` absorbs these current thoughts: their sources become its own, they
        are retired as merged into it (history). Returns the ids merged."""
        return self._write(lambda conn: merge(self._lifecycle(conn), survivor, absorbed, at=at, actor=actor))

    def gather_job(self, scope: Scope, record_ids: Sequence[str], *, kind: str, at: str, every: int) -> bool:
        """Gather records into the scope's (user, agent) job of `kind`, which is queued once
        it names `every` of them. True when it was queued now."""
        if not record_ids:
            return False
        return self._write(lambda conn: gather(self._lifecycle(conn), scope, record_ids, kind=kind, at=at,
                                               every=every))
