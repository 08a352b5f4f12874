"""The REST API: every `Memory` operation under /v1, bound to the caller's tenant.

A request's key resolves to a `Principal`; its tenant picks the `Memory` (a store of
its own), so handlers never filter by tenant and cannot forget to, and its users bound
what the handlers may do with it (`access.ScopedMemory`). Every error is
one JSON shape, `{"error": {"type", "message", "request_id"}}`, with the Engram error
class as its type; bad input is a 4xx, never a 500."""

from __future__ import annotations

import base64
import inspect
import json
import logging
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from .. import operations as ops
from ..errors import EngramError, InvalidInputError, UsageError
from . import schemas as s
from .access import ScopedMemory
from .auth import Authenticator
from .metrics import CONTENT_TYPE, BacklogProbe, Latency, RequestCounter, StoreSizes, render
from .middleware import RequestMiddleware, request_id_of, status_of
from .tenants import Principal, TenantRegistry

log = logging.getLogger("engramdb.server")

HTTP_TYPES = {400: "InvalidInputError", 401: "AuthenticationError", 403: "PermissionDeniedError",
              404: "NotFoundError", 405: "UsageError", 413: "InvalidInputError", 415: "InvalidInputError"}
ERRORS = {status: {"model": s.ErrorResponse} for status in (400, 401, 403, 404, 413, 422, 502, 503)}
LIST_LIMIT = 20
CUBE_TYPE = "application/x-ndjson"

_bearer = HTTPBearer(auto_error=False, description="An Engram API key: `engram keys create --tenant T`.")


def error_response(request: Request, status: int, kind: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": {"type": kind, "message": message, "request_id": request_id_of(request.scope)}}
    return JSONResponse(body, status_code=status, headers=headers)


# -- dependencies ----------------------------------------------------------------------


def principal(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    found = request.app.state.auth.principal(request.headers.get("authorization"))
    request.state.principal = found
    return found


def writer(who: Annotated[Principal, Depends(principal)]) -> Principal:
    who.require_write()
    return who


def reader_memory(request: Request, who: Annotated[Principal, Depends(principal)]) -> ScopedMemory:
    return ScopedMemory(request.app.state.registry.memory(who.tenant), who)


def writer_memory(request: Request, who: Annotated[Principal, Depends(writer)]) -> ScopedMemory:
    return ScopedMemory(request.app.state.registry.memory(who.tenant), who)


# A tenant's Memory as the caller's key may use it: its users, and writes only with a
# read-write key (access.ScopedMemory).
Reader = Annotated[ScopedMemory, Depends(reader_memory)]
Writer = Annotated[ScopedMemory, Depends(writer_memory)]
UserId = Annotated[str | None, Query(min_length=1, max_length=256,
                                     description="Whose memory; default: the API key's default user.")]
OptionalId = Annotated[str | None, Query(min_length=1, max_length=256)]


# -- the app ---------------------------------------------------------------------------


def create_app(registry: TenantRegistry, auth: Authenticator, *, mcp: bool = True,
               max_body_bytes: int | None = None, host: str = "127.0.0.1") -> FastAPI:
    """The REST API (and MCP at /mcp). The app owns `registry` and `auth.keys` and
    closes them on shutdown."""
    mcp_server = None
    if mcp:
        from .mcp_server import build_mcp, http_route

        mcp_server = build_mcp(registry, default=None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(_close, registry, auth)
            if mcp_server is not None:
                await stack.enter_async_context(mcp_server.session_manager.run())
            await run_in_threadpool(registry.embedder.embed, ["ready"])  # load the model before the first request
            app.state.ready = True
            yield
            app.state.ready = False

    app = FastAPI(
        title="Engram", version=__version__, lifespan=lifespan,
        # FastAPI's own OpenTelemetry (0.16x): off, whatever the environment says
        # (FASTAPI_OTEL_AUTO_CONFIGURE would add exporters). Engram's logs are its own.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                   "auto_configure": False},
        description="Long-term memory for LLM agents. Every route under /v1 needs `Authorization: Bearer <key>` "
                    "unless the server runs with --no-auth. Errors are `{\"error\": {\"type\", \"message\", "
                    "\"request_id\"}}`.",
    )
    app.state.registry = registry
    app.state.auth = auth
    app.state.ready = False
    app.state.backlog = BacklogProbe(registry)
    app.state.requests = Counter()
    app.state.latency = Latency()
    app.state.sizes = StoreSizes(registry)
    app.add_middleware(RequestMiddleware, max_body_bytes=max_body_bytes or registry.config.max_request_bytes)
    app.add_middleware(RequestCounter, counts=app.state.requests,  # outermost: counts the 413s too
                       latency=app.state.latency)
    _add_error_handlers(app)
    _add_probes(app)
    _add_routes(app)
    if mcp_server is not None:
        app.router.routes.append(http_route(mcp_server, auth, max_body_bytes or registry.config.max_request_bytes,
                                            host=host))
    return app


def _close(registry: TenantRegistry, auth: Authenticator) -> None:
    registry.close()
    if auth.keys is not None:
        auth.keys.close()


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EngramError)
    async def engram_error(request: Request, exc: EngramError) -> JSONResponse:
        status = status_of(exc)
        message = str(exc)
        if status >= 500:
            log.warning("request failed", extra={"fields": {"request_id": request_id_of(request.scope),
                                                           "error": type(exc).__name__, "message": message}})
            message = without_paths(message)  # the server's files are not the client's business
        return error_response(request, status, type(exc).__name__, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(request, 400, "InvalidInputError", "the request body is not valid JSON")
        return error_response(request, 422, "InvalidInputError", _describe(errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = HTTP_TYPES.get(exc.status_code, "UsageError" if exc.status_code < 500 else "EngramError")
        detail = str(exc.detail)
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):  # FastAPI's "error parsing the body"
            detail = "the request body is not valid JSON" + (
                ": it is not UTF-8 text" if isinstance(exc.__cause__, UnicodeDecodeError) else "")
        return error_response(request, exc.status_code, kind, detail)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc, extra={"fields": {"request_id": request_id_of(request.scope)}})
        return error_response(request, 500, "InternalError", "the server failed; see its log for this request id")


_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"/]+/)*[^\s'\":/]+")


def without_paths(message: str) -> str:
    """`message` with every absolute file path in it (`/srv/engram.tenants/t_….db`) shown
    as `…`; URLs (`postgresql://host/db`) and relative ids are left as they are."""
    return _PATH.sub("…", message)


def _describe(errors: list[dict[str, Any]]) -> str:
    """Pydantic's errors as one line, naming fields but never echoing their values."""
    parts = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def _add_probes(app: FastAPI) -> None:
    @app.get("/healthz", response_model=s.Status, tags=["probes"])
    def healthz() -> s.Status:
        """The process is up."""
        return s.Status(status="ok", version=__version__)

    @app.get("/readyz", response_model=s.Readiness, responses={503: {"model": s.ErrorResponse}}, tags=["probes"])
    def readyz(request: Request) -> Any:
        """The model is loaded and the key store answers. Reports the distillation backlog
        of the open tenants; a backlog older than the config's `max_backlog_age_s` (unset:
        never) makes it a 503."""
        if not app.state.ready:
            return error_response(request, 503, "StorageError", "the server is starting or stopping")
        if app.state.auth.keys is not None:
            app.state.auth.keys.ping()
        backlog = app.state.backlog.read()
        limit = app.state.registry.config.max_backlog_age_s
        age = backlog.backlog_age_s
        if limit is not None and age is not None and age > limit:
            return error_response(request, 503, "EngramError", (
                f"distillation is behind: the oldest waiting job has waited {age:.0f} s, more than "
                f"max_backlog_age_s ({limit:g} s); {backlog.pending} pending, {backlog.running} running"))
        return s.Readiness(status="ready", version=__version__,
                           jobs=s.Backlog(**backlog.to_dict(), max_backlog_age_s=limit))

    @app.get("/metrics", response_class=PlainTextResponse, tags=["probes"],
             responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format 0.0.4."},
                        401: {"model": s.ErrorResponse}})
    async def metrics(_: Annotated[Principal, Depends(principal)]) -> PlainTextResponse:
        """The distillation backlog of the open tenants (queue depth, failed jobs), the
        requests answered by route and status with their latency histograms, and each
        open tenant's store size, in Prometheus' text format. Needs a key, as /v1 does;
        the figures are the whole server's: no user is named in them, and a tenant only
        by its slug (`t_` and a hash of its name, as its store file is named)."""
        backlog = await run_in_threadpool(app.state.backlog.read)
        sizes = await run_in_threadpool(app.state.sizes.read)
        text = render(backlog, Counter(app.state.requests),  # copies, taken on the loop that counts
                      max_backlog_age_s=app.state.registry.config.max_backlog_age_s,
                      latency=app.state.latency.copy(), sizes=sizes)
        return PlainTextResponse(text, media_type=CONTENT_TYPE)


RESPONSES = {"search": s.SearchResponse, "context": s.ContextResponse, "recall": s.RecallResponse,
             "forget": s.ForgetResponse, "get": s.RecordOut, "update": s.RecordOut, "history": s.HistoryResponse,
             "jobs": s.JobsResponse}
TAGS = {"jobs": ["housekeeping"], "stats": ["housekeeping"], "export": ["cubes"], "import_": ["cubes"]}
# What each kind of parameter (operations.Kind) is in a query string (JSON ones: parsed, as `filters`).
QUERY_KINDS: dict[str, Any] = {"id": str, "text": str, "query": str, "int": int, "float": float, "bool": bool,
                               "json": str, "timestamp": str, "ids": list[str]}


def _query_parameter(param: ops.Param, in_path: bool) -> inspect.Parameter:
    kind = QUERY_KINDS[param.kind]
    limits = {"min_length": 1, "max_length": 256} if param.kind == "id" else {}
    if in_path:
        annotation: Any = Annotated[kind, PathParam(description=param.help or None)]
        return inspect.Parameter(param.public, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
    if param.name == "user_id":
        return inspect.Parameter("user_id", inspect.Parameter.KEYWORD_ONLY, annotation=UserId if param.required
                                 else OptionalId, default=None)
    required = param.required
    optional = kind | None if required or param.shown_default is None else kind
    annotation = Annotated[optional, Query(description=param.help or None, **limits)]
    return inspect.Parameter(param.public, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=... if required else param.shown_default)


def _add_derived_route(app: FastAPI, op: ops.Operation) -> None:
    """The route of a row whose REST form is `derived`. Its path's `{names}` are path
    parameters; a POST or PATCH takes the rest as a JSON body (its request model,
    schemas.REQUESTS), a GET or DELETE as a query string (a JSON kind parsed as
    `filters` is). The answer is `operations.body_of` the result; `confirm` guards a
    destructive one; a write needs a read-write key."""
    form = op.form("rest")
    assert form is not None and form.derived
    verb, path = form.name.split(" ", 1)
    params = op.surface_params("rest")
    in_path = set(s.path_params(op))
    model = s.REQUESTS.get(op.name)
    if model is None and verb in ("POST", "PATCH", "PUT"):
        model = s.request_model(op, exclude=s.path_params(op))
    signature = [inspect.Parameter("memory", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                   annotation=Writer if op.writes else Reader)]
    if model is not None:
        signature.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=model))
    signature.extend(_query_parameter(p, p.public in in_path) for p in params
                     if model is None or p.public in in_path)

    def handler(memory: ScopedMemory, body: Any = None, **given: Any) -> Any:
        if "confirm" in form.extra and body.confirm is not True:
            raise UsageError(f"{op.name} erases every memory of the scope; send confirm: true")
        args = {}
        for p in params:
            value = given[p.public] if p.public in given else getattr(body, p.public)
            args[p.name] = _json_filters(value, p.public) if p.kind == "json" and body is None else value
        return ops.body_of(op, memory.run(op, **args))

    handler.__name__ = op.name
    handler.__doc__ = op.summary
    handler.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    app.add_api_route(path, handler, methods=[verb], response_model=RESPONSES.get(op.name), responses=ERRORS,
                      tags=TAGS.get(op.name, ["memories"]))


def _add_routes(app: FastAPI) -> None:
    tags = ["memories"]
    for op in ops.OPERATIONS:
        form = op.form("rest")
        if form is not None and form.derived:
            _add_derived_route(app, op)

    @app.post("/v1/memories", status_code=201, response_model=s.AddResponse, responses=ERRORS, tags=tags)
    def add(body: s.AddRequest, memory: Writer) -> Any:
        """Store messages; each is searchable when this returns. The whole batch is checked
        first: one bad message stores none (with `skip_empty`, empty ones are left out)."""
        options = _skip_empty(memory, body.skip_empty)
        result = memory.add(body.as_messages(), user_id=body.user_id, session_id=body.session_id,
                            agent_id=body.agent_id, metadata=body.metadata, **options)
        return result.to_dict()

    @app.get("/v1/memories", response_model=s.ListResponse, responses=ERRORS, tags=tags)
    def list_memories(memory: Reader, user_id: UserId = None, agent_id: OptionalId = None,
                      session_id: OptionalId = None, limit: int = LIST_LIMIT,
                      cursor: Annotated[str | None, Query(max_length=512)] = None,
                      offset: Annotated[int | None, Query(ge=0)] = None,
                      filters: Annotated[str | None, Query(description="A JSON filter object, as for search.")] = None,
                      as_of: Annotated[str | None, Query(max_length=64, description=ops.AS_OF.help)] = None,
                      include_retired: Annotated[bool, Query(description=ops.RETIRED.help)] = False,
                      include_archived: Annotated[bool, Query(description=ops.ARCHIVED.help)] = False,
                      ) -> Any:
        """A scope's memories in time order, a page at a time: pass `next_cursor` back as `cursor`."""
        if cursor is not None and offset is not None:
            raise InvalidInputError("give cursor or offset, not both")
        start = _decode_cursor(cursor) if cursor is not None else offset or 0
        max_limit = memory.config.max_limit
        probe = limit + 1 if 0 < limit < max_limit else limit  # one more row tells whether a next page exists
        records = memory.list(user_id=user_id, agent_id=agent_id, session_id=session_id, limit=probe,
                              offset=start, filters=_json_filters(filters), as_of=as_of,
                              include_retired=include_retired, include_archived=include_archived)
        more = len(records) > limit or (probe == limit == len(records))
        records = records[:limit]
        following = start + len(records) if more else None
        return {"records": [r.to_dict() for r in records], "next_offset": following,
                "next_cursor": None if following is None else _encode_cursor(following)}

    @app.delete("/v1/memories/{memory_id}", response_model=s.DeleteResponse, responses=ERRORS, tags=tags)
    def delete(memory_id: str, memory: Writer, user_id: OptionalId = None) -> Any:
        """Erase a memory: its text leaves the store, its indexes and its history."""
        memory.delete(memory_id, user_id=user_id)
        return {"deleted": memory_id}

    @app.post("/v1/export", responses={200: {"content": {CUBE_TYPE: {}}, "description": "An Engram cube (JSONL)."},
                                       **ERRORS}, response_class=FileResponse, tags=["cubes"])
    def export(body: s.ExportRequest, memory: Reader) -> Any:
        """A scope's memories as a portable JSONL cube (what `engram export` writes)."""
        folder = Path(tempfile.mkdtemp(prefix="engram-export-"))
        try:
            memory.export(folder / "cube.jsonl", user_id=body.user_id, agent_id=body.agent_id,
                          session_id=body.session_id)
        except EngramError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise _without_path(exc, folder / "cube.jsonl", "the cube") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(folder / "cube.jsonl", media_type=CUBE_TYPE, filename="engram-cube.jsonl",
                            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))

    @app.post("/v1/import", response_model=s.ImportResponse, responses=ERRORS, tags=["cubes"],
              openapi_extra={"requestBody": {"required": True, "content": {CUBE_TYPE: {"schema": {"type": "string"}}}}})
    async def import_(request: Request, memory: Writer, user_id: OptionalId = None) -> Any:
        """Load a cube (the body of an export). With `user_id`, every record moves into that
        user's scope under new ids. Records whose id already exists are skipped. A key
        scoped to some users imports a cube only if it reaches every user in it."""
        data = await request.body()
        return {"imported": await run_in_threadpool(_import, memory, data, user_id)}

    @app.get("/v1/stats", response_model=s.StatsResponse, responses=ERRORS, tags=["housekeeping"])
    def stats(memory: Reader, user_id: OptionalId = None) -> Any:
        """Counts for the tenant's store, or for one user."""
        data = memory.stats(user_id=user_id)
        data.pop("store", None)  # a path on the server: not the client's business
        return data


def _skip_empty(memory: ScopedMemory, skip: bool) -> dict[str, Any]:
    """`{"skip_empty": True}` when asked for, if this engramdb's Memory.add takes it."""
    if not skip:
        return {}
    if "skip_empty" not in inspect.signature(memory.memory.add).parameters:
        raise UsageError("this server's engramdb cannot skip empty messages (Memory.add has no skip_empty)")
    return {"skip_empty": True}


def _import(memory: ScopedMemory, data: bytes, user_id: str | None) -> int:
    if not data.strip():
        raise InvalidInputError("the request body is empty; send an Engram cube (JSONL)")
    with tempfile.TemporaryDirectory(prefix="engram-import-") as folder:
        path = Path(folder) / "cube.jsonl"
        path.write_bytes(data)
        try:
            return memory.import_(path, user_id=user_id)
        except EngramError as exc:
            raise _without_path(exc, path, "the uploaded cube") from None


def _without_path(exc: EngramError, path: Path, name: str) -> EngramError:
    """The same error, its message naming `name` where it named a file of the server's."""
    message = str(exc)
    for where in (str(path), str(path.parent)):
        message = message.replace(where, name)
    return exc if message == str(exc) else type(exc)(message)


def _json_filters(text: str | None, name: str = "filters") -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInputError(f"{name} is not valid JSON") from None
    except RecursionError:
        raise InvalidInputError(f"{name} nests deeper than {s.MAX_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"{name} must be a JSON object, got {type(value).__name__}")
    problem = s.json_problem(value, name)
    if problem is not None:
        raise InvalidInputError(problem)
    try:
        return s.shallow(value)
    except ValueError as exc:
        raise InvalidInputError(f"{name} {exc}") from None


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = data["offset"]
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise InvalidInputError("cursor is not one this server gave out") from None
    return offset


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document, as served at /openapi.json (and checked into docs/openapi.json)."""
    from ..config import Config

    return create_app(TenantRegistry(None, Config()), Authenticator(None)).openapi()


if __name__ == "__main__":  # python -m engramdb.server.rest > docs/openapi.json
    print(json.dumps(openapi_schema(), indent=2, sort_keys=True))
