"""Engram over MCP (the official `mcp` SDK): remember, recall, context, context_with_sources,
list_memories, get_memory, memory_history, update_memory, forget. The tools of rows marked
`derived` in engramdb/operations.py are built from their rows (`derived_tool`).

Two transports, one set of tools. Over stdio (`engram serve --mcp-stdio`) a local
agent talks to one store as one principal. Over streamable HTTP (mounted at /mcp next
to REST) each request carries an API key, checked here before the SDK sees the
request; the tools read the principal from that request, never from their arguments,
and act through `access.ScopedMemory`, as REST does: the key's users, its default user
(`--user` on stdio), read-only keys. Each tool says whether it reads, adds or erases
(MCP tool annotations); `forget` erases nothing without `confirm: true`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.types import ToolAnnotations
from pydantic import Field, StrictBool
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from .. import operations as ops
from ..errors import EngramError, InvalidInputError, UsageError
from .access import ScopedMemory
from .auth import Authenticator
from .middleware import request_id_of, send_error, status_of
from .schemas import MessageIn, Role, json_problem, shallow
from .tenants import Principal, TenantRegistry

INSTRUCTIONS = (
    "Engram is this user's long-term memory. Before answering, call `context` with the user's message "
    "to get what you already know about them. Call `remember` with what the user tells you that is "
    "worth keeping. `recall` searches memories (`as_of`: what was true on a date); `list_memories` "
    "pages through them; `memory_history` shows how one changed; `forget` erases, "
    "only when the user asks for it, with confirm: true. Leave `user_id` out when the server has a "
    "default user; never invent one."
)

LIST_LIMIT = ops.operation("list").param("limit").shown_default
UserId = Annotated[str | None, Field(description=(
    "Whose memory. Leave it out to use this server's (or API key's) default user; do not invent one."))]


def hints(op: ops.Operation, title: str | None = None) -> ToolAnnotations:
    """The MCP annotations of `op`'s tool, from its row: reads or writes, destroys or not."""
    form = op.form("mcp")
    named = op.name.strip("_").replace("_", " ").capitalize()
    shown = title or (form.title if form is not None and form.title else named)
    return ToolAnnotations(title=shown, read_only_hint=op.reads, destructive_hint=op.destructive,
                           idempotent_hint=op.idempotent, open_world_hint=False)


# What each kind of parameter (operations.Kind) is in a tool's arguments.
KINDS: dict[str, Any] = {"id": str, "text": str, "query": str, "int": int, "float": float, "bool": bool,
                         "json": dict[str, Any], "timestamp": str, "ids": list[str]}


def derived_tool(op: ops.Operation, memory: Callable[[Context], ScopedMemory]) -> Callable[..., Any]:
    """The tool of a row whose MCP form is `derived`: one argument per parameter (the
    row's help as its description, `user_id` always optional), the result as REST gives
    it (`rest.body_of`), a text result (a prompt block) as text."""
    params = op.surface_params("mcp")
    text_result = op.returns == "str"

    def tool(ctx: Context, **given: Any) -> Any:
        with _errors():
            args = {p.name: _shallow(p.public, given[p.public]) if p.kind == "json" else given[p.public]
                    for p in params}
            result = memory(ctx).run(op, **args)
            return result if text_result else ops.body_of(op, result)

    signature = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Context)]
    for p in params:
        kind = KINDS[p.kind]
        if p.name == "user_id":
            annotation, default = UserId, None
        elif p.required:
            annotation, default = Annotated[kind, Field(description=p.help)], inspect.Parameter.empty
        else:
            optional = kind | None if p.shown_default is None else kind
            annotation, default = Annotated[optional, Field(description=p.help)], p.shown_default
        signature.append(inspect.Parameter(p.public, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                           default=default))
    returns = str if text_result else dict[str, Any]
    tool.__name__ = op.name
    tool.__signature__ = inspect.Signature(signature, return_annotation=returns)  # type: ignore[attr-defined]
    tool.__annotations__ = {**{p.name: p.annotation for p in signature}, "return": returns}
    return tool
StrictMessage = Annotated[str | MessageIn, Field(union_mode="left_to_right")]


def build_mcp(registry: TenantRegistry, *, default: Principal | None) -> MCPServer:
    """The MCP server. `default` is the principal of a transport without HTTP requests
    (stdio); over HTTP the principal always comes from the request's key."""
    server = MCPServer("engram", version=__version__, instructions=INSTRUCTIONS)

    def memory(ctx: Context) -> ScopedMemory:
        request = ctx.request_context.request
        if request is None:
            who = default
        else:
            who = request.scope.get("state", {}).get("principal")
        if who is None:
            raise ToolError("AuthenticationError: this transport has no API key")
        return ScopedMemory(registry.memory(who.tenant), who)

    @server.tool(annotations=hints(ops.operation("add"), "Remember"))
    def remember(ctx: Context, text: str | None = None,
                 messages: Annotated[list[StrictMessage] | None, Field(description=(
                     "Several turns at once, each a string or {role, content, name, id, timestamp}: "
                     "name is the speaker, id your id for the turn, timestamp when it was said (ISO 8601)."
                 ))] = None,
                 user_id: UserId = None, session_id: str | None = None, agent_id: str | None = None,
                 role: Role = "user", name: Annotated[str | None, Field(description="Who said `text`.")] = None,
                 timestamp: Annotated[str | None, Field(description="When `text` was said (ISO 8601).")] = None,
                 metadata: dict[str, Any] | None = None,
                 skip_empty: Annotated[bool, Field(description=ops.operation("add").param("skip_empty").help)] = False,
                 ) -> dict[str, Any]:
        """Store what the user said (or a fact worth keeping) in the user's memory: `text`
        (one turn), or `messages` (several, with speakers, dates and ids)."""
        with _errors():
            batch = _batch(text, messages, role=role, name=name, timestamp=timestamp)
            result = memory(ctx).add(batch, user_id=user_id, session_id=session_id, agent_id=agent_id,
                                     metadata=_shallow("metadata", metadata), skip_empty=skip_empty)
            return {"ids": result.ids}

    for op in ops.OPERATIONS:
        form = op.form("mcp")
        if form is not None and form.derived:
            server.add_tool(derived_tool(op, memory), name=form.name, title=form.title or None,
                            description=form.help or op.summary, annotations=hints(op))

    @server.tool(annotations=hints(ops.operation("list")))
    def list_memories(ctx: Context, user_id: UserId = None, limit: int = LIST_LIMIT, offset: int = 0,
                      session_id: str | None = None, agent_id: str | None = None,
                      filters: Annotated[dict[str, Any] | None, Field(description=ops.FILTERS.help)] = None,
                      as_of: Annotated[str | None, Field(description=ops.AS_OF.help)] = None,
                      include_retired: Annotated[bool, Field(description=ops.RETIRED.help)] = False,
                      include_archived: Annotated[bool, Field(description=ops.ARCHIVED.help)] = False,
                      ) -> dict[str, Any]:
        """The user's memories in time order, a page at a time."""
        with _errors():
            records = memory(ctx).list(user_id=user_id, limit=limit, offset=offset, session_id=session_id,
                                       agent_id=agent_id, filters=_shallow("filters", filters), as_of=as_of,
                                       include_retired=include_retired, include_archived=include_archived)
            return {"records": [r.to_dict() for r in records],
                    "next_offset": offset + len(records) if len(records) == limit else None}

    @server.tool(annotations=hints(ops.operation("forget")))
    def forget(ctx: Context, confirm: Annotated[StrictBool, Field(description=(
                   "Must be true: erased text cannot be recovered. Set it only when the user asked to forget."
               ))] = False,
               user_id: UserId = None, memory_id: str | None = None, session_id: str | None = None,
               agent_id: str | None = None) -> dict[str, Any]:
        """Erase one memory (`memory_id`), or every memory of the user's scope (optionally one
        session or agent). Erased text cannot be recovered: only when the user asks, with
        `confirm: true`."""
        with _errors():
            if confirm is not True:
                raise UsageError("forget erases memories for good; call it with confirm: true, "
                                 "and only when the user asked to forget")
            target = memory(ctx)
            if memory_id is not None:
                target.delete(memory_id, user_id=user_id)
                return {"forgotten": 1}
            return {"forgotten": target.forget(user_id=user_id, session_id=session_id, agent_id=agent_id)}

    return server


def _batch(text: str | None, messages: list[str | MessageIn] | None, *, role: str, name: str | None,
           timestamp: str | None) -> Any:
    """What `remember` stores, as Memory.add takes it: one turn from `text`, or `messages`."""
    if (text is None) == (messages is None):
        raise InvalidInputError("give text (one turn) or messages (a list of turns), not both and not neither")
    if messages is not None:
        if name is not None or timestamp is not None:
            raise InvalidInputError("name and timestamp go with text; in messages, give them per message")
        return [m if isinstance(m, str) else m.model_dump(exclude_none=True) for m in messages]
    turn = {"role": role, "content": text, "name": name, "timestamp": timestamp}
    return {k: v for k, v in turn.items() if v is not None}


def _shallow(name: str, value: Any) -> Any:
    """`value` (metadata or filters) if a store can keep it: not nested too deep, no NaN
    or Infinity (JSON-RPC's reader takes them), else InvalidInputError."""
    problem = json_problem(value, name)
    if problem is not None:
        raise InvalidInputError(problem)
    try:
        return shallow(value)
    except ValueError as exc:
        raise InvalidInputError(f"{name} {exc}") from None


class _errors:
    """An Engram error becomes a tool error the model can read: `<Class>: message`."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, EngramError):
            raise ToolError(f"{type(exc).__name__}: {exc}") from exc
        return False


# -- streamable HTTP -------------------------------------------------------------------


class KeyAuth:
    """Checks the API key of every MCP request and puts its principal on the request."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                who = await run_in_threadpool(self.auth.principal, Headers(scope=scope).get("authorization"))
            except EngramError as exc:
                headers = {"www-authenticate": "Bearer"} if status_of(exc) == 401 else None
                await send_error(send, status_of(exc), type(exc).__name__, str(exc), request_id_of(scope), headers)
                return
            scope.setdefault("state", {})["principal"] = who
        await self.app(scope, receive, send)


def http_route(server: MCPServer, auth: Authenticator, max_body_bytes: int, *, host: str, path: str = "/mcp") -> Route:
    """The MCP endpoint to mount beside REST. Stateless and JSON: every request stands
    alone, with its own key, which suits load balancers and load generators alike.
    The caller runs `server.session_manager.run()` in its lifespan."""
    server.streamable_http_app(streamable_http_path=path, stateless_http=True, json_response=True,
                               max_request_body_size=max_body_bytes, host=host)
    return Route(path, endpoint=KeyAuth(StreamableHTTPASGIApp(server.session_manager), auth))


def run_stdio(registry: TenantRegistry, principal: Principal) -> None:
    """Serve one agent over stdin/stdout until it hangs up."""
    try:
        build_mcp(registry, default=principal).run("stdio")
    finally:
        registry.close()
