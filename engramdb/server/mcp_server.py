"""Engram over MCP (the official `mcp` SDK): remember, recall, forget, list_memories, context.

Two transports, one set of tools. Over stdio (`engram serve --mcp-stdio`) a local
agent talks to one store as one principal. Over streamable HTTP (mounted at /mcp next
to REST) each request carries an API key, checked here before the SDK sees the
request; the tools read the principal from that request, never from their arguments."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..errors import EngramError, InvalidInputError
from .auth import Authenticator
from .middleware import request_id_of, send_error, status_of
from .schemas import shallow
from .tenants import Principal, TenantRegistry

INSTRUCTIONS = (
    "Engram is this user's long-term memory. Before answering, call `context` with the user's message "
    "to get what you already know about them. Call `remember` with what the user tells you that is "
    "worth keeping. `recall` searches memories; `list_memories` pages through them; `forget` erases."
)


def build_mcp(registry: TenantRegistry, *, default: Principal | None) -> MCPServer:
    """The MCP server. `default` is the principal of a transport without HTTP requests
    (stdio); over HTTP the principal always comes from the request's key."""
    server = MCPServer("engram", version=__version__, instructions=INSTRUCTIONS)

    def memory(ctx: Context, *, write: bool = False) -> Any:
        request = ctx.request_context.request
        if request is None:
            who = default
        else:
            who = request.scope.get("state", {}).get("principal")
        if who is None:
            raise ToolError("AuthenticationError: this transport has no API key")
        if write and who.read_only:
            raise ToolError("PermissionDeniedError: this API key is read-only")
        return registry.memory(who.tenant)

    @server.tool()
    def remember(text: str, user_id: str, ctx: Context, session_id: str | None = None,
                 agent_id: str | None = None, role: str = "user", metadata: dict[str, Any] | None = None,
                 ) -> dict[str, Any]:
        """Store something the user said (or a fact worth keeping) in the user's memory."""
        with _errors():
            result = memory(ctx, write=True).add({"role": role, "content": text}, user_id=user_id,
                                                 session_id=session_id, agent_id=agent_id,
                                                 metadata=_shallow("metadata", metadata))
            return {"ids": result.ids}

    @server.tool()
    def recall(query: str, user_id: str, ctx: Context, limit: int = 10, session_id: str | None = None,
               agent_id: str | None = None, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Search the user's memories: the best matches for `query`, best first."""
        with _errors():
            hits = memory(ctx).search(query, user_id=user_id, limit=limit, filters=_shallow("filters", filters),
                                      session_id=session_id, agent_id=agent_id)
            return {"hits": [h.to_dict() for h in hits]}

    @server.tool()
    def context(query: str, user_id: str, ctx: Context, budget_tokens: int = 1500, session_id: str | None = None,
                agent_id: str | None = None) -> str:
        """Call before answering: a block of what you know about the user that matters for `query`,
        within `budget_tokens`, ready to put in your prompt."""
        with _errors():
            return memory(ctx).context(query, user_id=user_id, budget_tokens=budget_tokens, session_id=session_id,
                                       agent_id=agent_id)

    @server.tool()
    def list_memories(user_id: str, ctx: Context, limit: int = 20, offset: int = 0, session_id: str | None = None,
                      agent_id: str | None = None) -> dict[str, Any]:
        """The user's memories in time order, a page at a time."""
        with _errors():
            records = memory(ctx).list(user_id=user_id, limit=limit, offset=offset, session_id=session_id,
                                       agent_id=agent_id)
            return {"records": [r.to_dict() for r in records],
                    "next_offset": offset + len(records) if len(records) == limit else None}

    @server.tool()
    def forget(user_id: str, ctx: Context, memory_id: str | None = None, session_id: str | None = None,
               agent_id: str | None = None) -> dict[str, Any]:
        """Erase one memory (`memory_id`), or every memory of the user's scope (optionally one
        session or agent). Erased text cannot be recovered."""
        with _errors():
            target = memory(ctx, write=True)
            if memory_id is not None:
                target.delete(memory_id, user_id=user_id)
                return {"forgotten": 1}
            return {"forgotten": target.forget(user_id=user_id, session_id=session_id, agent_id=agent_id)}

    return server


def _shallow(name: str, value: Any) -> Any:
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
