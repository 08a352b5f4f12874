"""The web inspector: its page at /ui (plain HTML, CSS and JavaScript shipped in the
package: engramdb/inspector/static) and the few read-only JSON routes under /ui/api that
its pages need beyond /v1 (users, sessions, a timeline with retired memories, a
memory's links and history, what `as_of` a date answers, the job queue, erasure receipts).

The page holds no data: it is served without a key. Every /ui/api route needs the key
/v1 needs and sees what that key reaches (access.ScopedMemory); writes (delete, forget)
go through /v1 itself. Stored text is data: the page writes it with textContent only,
and a Content-Security-Policy allows no script but the page's own."""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse

from ..errors import InvalidInputError, NotFoundError
from ..types import Record
from .access import ScopedMemory

STATIC = Path(str(resources.files("engramdb.inspector") / "static"))
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
PAGE = 50  # records, jobs or receipts a page
MAX_PAGE = 500
CHAIN = 50  # memories followed along supersedes links
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Id = Annotated[str | None, Query(min_length=1, max_length=256)]
Cursor = Annotated[str | None, Query(max_length=1024)]

router = APIRouter(include_in_schema=False)


def _files() -> dict[str, Path]:
    """The page's assets by name: only what ships in the folder is ever served."""
    return {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in TYPES}


def _scoped(request: Request) -> ScopedMemory:
    who = request.app.state.auth.principal(request.headers.get("authorization"))
    request.state.principal = who
    return ScopedMemory(request.app.state.registry.memory(who.tenant), who)


# -- the page --------------------------------------------------------------------------


@router.get("/ui")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
def ui_page() -> FileResponse:
    return _asset("index.html")


@router.get("/ui/static/{name}")
def ui_asset(name: str) -> FileResponse:
    return _asset(name)


def _asset(name: str) -> FileResponse:
    path = _files().get(name)
    if path is None:
        raise NotFoundError(f"the inspector has no file {name!r}")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=HEADERS)


# -- its reads -------------------------------------------------------------------------


@router.get("/ui/api/whoami")
def whoami(request: Request) -> dict[str, Any]:
    memory = _scoped(request)
    scope = memory.scope
    return {"tenant": memory.who.tenant, "read_only": memory.who.read_only, "users": scope.describe(),
            "default_user": scope.default, "auth": request.app.state.auth.enabled}


@router.get("/ui/api/users")
def users(request: Request, after: Id = None, limit: Limit = 200) -> dict[str, Any]:
    """Users with how many records each holds, in id order."""
    memory = _scoped(request)
    found: list[dict[str, Any]] = []
    cursor, exhausted = after, False
    while len(found) < limit and not exhausted:  # a scoped key skips others' users
        rows = memory.memory.store.user_counts(limit, cursor)
        exhausted = len(rows) < limit
        for user_id, count in rows:
            if memory.scope.allows(user_id) and len(found) < limit:
                found.append({"user_id": user_id, "records": count})
        if rows:
            cursor = rows[-1][0]
    more = len(found) == limit and not exhausted
    return {"users": found, "next": found[-1]["user_id"] if more and found else None}


@router.get("/ui/api/sessions")
def sessions(request: Request, user_id: Id = None, limit: Limit = 200) -> dict[str, Any]:
    memory = _scoped(request)
    user = memory.user(user_id)
    return {"user_id": user, "sessions": memory.memory.store.sessions(user, limit)}


@router.get("/ui/api/timeline")
def timeline(request: Request, user_id: Id = None, session_id: Id = None,
             kind: Annotated[str | None, Query(max_length=64)] = None, cursor: Cursor = None,
             limit: Limit = PAGE) -> dict[str, Any]:
    """A user's memories in time order, turns and derived ones, retired ones included,
    a page at a time. The cursor is a key (the time of the page's last memory, and how
    many of that time were shown), so a deep page costs what the first one does."""
    memory = _scoped(request)
    user = memory.user(user_id)
    since, skip = _read_cursor(cursor)
    filters: dict[str, Any] = {}
    if since is not None:
        filters["created_at"] = {"gte": since}
    if kind:
        filters["kind"] = kind
    records = memory.list(user_id=user, session_id=session_id, limit=limit + 1, offset=skip,
                          filters=filters or None, include_retired=True)
    page, more = records[:limit], len(records) > limit
    following = None
    if more:
        last = page[-1].created_at
        same = sum(1 for r in page if r.created_at == last) + (skip if last == since else 0)
        following = cursor_for(last, same)
    return {"user_id": user, "records": [_row(r) for r in page], "next_cursor": following}


@router.get("/ui/api/memories/{memory_id}")
def memory_page(request: Request, memory_id: str, user_id: Id = None) -> dict[str, Any]:
    """One memory with its history and its links: the turns it was derived from, what was
    derived from it, what it superseded or retracted and what superseded or retracted it.
    An erased memory has no record, only its receipt (hashes, no text)."""
    memory = _scoped(request)
    versions = [v.to_dict() for v in memory.history(memory_id, user_id=user_id)]
    try:
        record: Record | None = memory.get(memory_id, user_id=user_id)
    except NotFoundError:
        record = None
    out: dict[str, Any] = {"record": None if record is None else _row(record), "history": versions,
                           "sources": [], "derived": [], "supersedes": [], "superseded_by": [], "retracts": [],
                           "retracted_by": []}
    if record is None:
        return out
    names = {("derived_from", True): "sources", ("derived_from", False): "derived",
             ("supersedes", True): "supersedes", ("supersedes", False): "superseded_by",
             ("retracts", True): "retracts", ("retracts", False): "retracted_by"}
    wanted: dict[str, list[str]] = {}
    for src, type_, dst in memory.memory.store.memory_links(memory_id):
        mine = src == memory_id
        name = names.get((type_, mine))
        if name is not None:
            wanted.setdefault(name, []).append(dst if mine else src)
    every = sorted({i for ids in wanted.values() for i in ids})
    found = {r.id: r for r in memory.memory.store.records_by_ids(every, record.user_id)}
    for name, ids in wanted.items():
        out[name] = [_row(found[i]) if i in found else {"id": i, "erased": True} for i in ids]
    return out


@router.get("/ui/api/memories/{memory_id}/as_of")
def as_of(request: Request, memory_id: str, date: Annotated[str, Query(min_length=1, max_length=64)],
          user_id: Id = None) -> dict[str, Any]:
    """What `as_of=date` answers for this memory's chain (it, and what superseded it or
    was superseded by it, followed both ways): the library's own `list(as_of=…)`."""
    memory = _scoped(request)
    record = memory.get(memory_id, user_id=user_id)
    chain, todo = [memory_id], [memory_id]
    while todo and len(chain) < CHAIN:
        for src, type_, dst in memory.memory.store.memory_links(todo.pop()):
            if type_ != "supersedes":
                continue
            for other in (src, dst):
                if other not in chain and len(chain) < CHAIN:
                    chain.append(other)
                    todo.append(other)
    answer = memory.list(user_id=record.user_id, as_of=date, filters={"id": {"in": chain}}, limit=CHAIN)
    return {"date": date, "chain": chain, "answer": [_row(r) for r in answer]}


@router.get("/ui/api/jobs")
def jobs(request: Request, user_id: Id = None, state: Annotated[str | None, Query(pattern="^(pending|running|failed)$")] = None,
         before: Annotated[int | None, Query(ge=1)] = None, limit: Limit = PAGE) -> dict[str, Any]:
    """The queue's counts (as /v1/jobs) and its jobs, newest first, with their errors."""
    memory = _scoped(request)
    user = memory.user(user_id) if user_id is not None or memory.scope.restricted else None
    rows = memory.memory.store.job_rows(user, state, limit + 1, before)
    page = rows[:limit]
    return {"summary": memory.jobs(user_id=user), "jobs": page,
            "next": page[-1]["id"] if len(rows) > limit else None}


@router.get("/ui/api/erasures")
def erasures(request: Request, user_id: Id = None, cursor: Cursor = None, limit: Limit = PAGE) -> dict[str, Any]:
    """A user's erasure receipts, newest first: id, time and hash of each erased memory."""
    memory = _scoped(request)
    user = memory.user(user_id)
    before = None
    if cursor is not None:
        at, seen = _read_cursor(cursor, key=True)
        before = (at, seen)
    rows = memory.memory.store.erasures(user, limit + 1, before)
    page = rows[:limit]
    following = cursor_for(page[-1]["at"], page[-1]["memory_id"]) if len(rows) > limit else None
    return {"user_id": user, "receipts": page, "next_cursor": following}


# -- helpers ---------------------------------------------------------------------------


def _row(record: Record) -> dict[str, Any]:
    return record.to_dict()


def cursor_for(at: str, rest: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([at, rest]).encode()).decode().rstrip("=")


def _read_cursor(cursor: str | None, *, key: bool = False) -> tuple[Any, Any]:
    if cursor is None:
        return None, 0
    try:
        at, rest = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(at, str) or (isinstance(rest, bool) or not isinstance(rest, str if key else int)):
            raise ValueError
        if not key and rest < 0:
            raise ValueError
    except (ValueError, TypeError):
        raise InvalidInputError("cursor is not one this server gave out") from None
    return at, rest

