"""The proxy's ASGI app: OpenAI's `/v1/chat/completions` (streamed and not) and
`/v1/models`, in front of any OpenAI-compatible upstream, with the user's memory put
into each conversation and each exchange stored after its answer.

A request's user: the `X-Engram-User` header, else `engram.user_id` in the body, else
OpenAI's `user` field, else (with Engram keys) the key's default user or (without)
`--user`. Per request, the `engram` body field (taken out before forwarding) or headers
set `budget_tokens` (`X-Engram-Budget`), `session_id` (`X-Engram-Session`), and
`recall` / `remember` (false: no memory put in / nothing stored).

Every response says what memory did in `X-Engram-Memory`: `injected` (with
`X-Engram-Memories`, how many, and `X-Engram-Memory-Ms`, how long the lookup took),
`empty` (nothing to remember yet), `off` (the request asked for none) or `unavailable`
(Engram failed or was too slow: the request went on without memory;
`X-Engram-Memory-Error` names the error class). Engram's own failure
never blocks the chat; the exchange is stored after the answer has gone out (streamed:
after the last chunk), and distilled in the background."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import EngramError, InvalidInputError
from ..server.auth import Authenticator
from ..server.middleware import RequestMiddleware, status_of
from ..server.scopes import check_name
from ..server.tenants import Principal
from . import layout
from .forward import StreamText, Upstream, UpstreamError, answer_of, response_headers
from .inject import Injector

log = logging.getLogger("engramdb.proxy")

MEMORY = "X-Engram-Memory"
OPTION_KEYS = frozenset({"user_id", "session_id", "budget_tokens", "recall", "remember"})


@dataclass(frozen=True)
class ProxyOptions:
    budget_tokens: int = layout.DEFAULT_BUDGET_TOKENS
    default_user: str | None = None  # without Engram keys: the user a request that names none is
    memory_timeout_s: float = 5.0  # a lookup slower than this: the request goes on without memory
    max_body_bytes: int = 16_000_000  # bigger request bodies get 413 (config max_request_bytes)


@dataclass(frozen=True)
class Turn:
    """What one request asks of memory, read from its headers and `engram` field."""

    user_id: str
    session_id: str | None
    budget_tokens: int
    recall: bool
    remember: bool


def openai_error(status: int, message: str, kind: str, code: str | None = None,
                 headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def create_app(upstream: Upstream, memories: Callable[[Principal], Any], auth: Authenticator, *,
               options: ProxyOptions = ProxyOptions(), injector: Injector | None = None,
               on_start: Callable[[], None] | None = None, on_close: Callable[[], None] | None = None) -> Starlette:
    """`memories(principal)`: the Memory (or key-scoped Memory) a caller's requests use;
    `on_start` runs before the first request (e.g. loading the embedding model), `on_close`
    at shutdown (closing the memories)."""
    injector = injector or Injector()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            if on_start is not None:
                await run_in_threadpool(on_start)
            yield
        finally:
            await upstream.aclose()
            if on_close is not None:
                await run_in_threadpool(on_close)

    def caller(request: Request) -> Principal:
        who = auth.principal(request.headers.get("authorization"))
        request.state.principal = who  # for the access log (tenant, key id; never the key)
        return who

    async def models(request: Request) -> Response:
        try:
            await run_in_threadpool(caller, request)
        except EngramError as exc:
            return _engram_error(exc)
        try:
            answer = await upstream.open("GET", "/models", upstream.headers(request.headers,
                                                                            pass_authorization=not auth.enabled))
        except UpstreamError as exc:
            return openai_error(exc.status, str(exc), "upstream_error", exc.code)
        try:
            body = await answer.aread()
        finally:
            await answer.aclose()
        return Response(body, status_code=answer.status_code, headers=response_headers(answer))

    async def chat(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return openai_error(400, "the request body is not valid JSON", "invalid_request_error")
        if (not isinstance(body, dict) or not isinstance(body.get("messages"), list)
                or not all(isinstance(m, dict) for m in body["messages"])):
            return openai_error(400, "the request body must be a JSON object with a `messages` list of objects",
                                "invalid_request_error")
        try:
            who = await run_in_threadpool(caller, request)
            turn = _turn(request, body, options, who if auth.enabled else None)
        except EngramError as exc:
            return _engram_error(exc)
        messages = body["messages"]
        headers: dict[str, str] = {}
        memory = await _open(memories, who, headers)
        if memory is not None and turn.recall:
            injection = await _lookup(injector, memory, turn, messages, options, headers)
            if injection is not None and (injection.message is not None or injection.late is not None):
                body["messages"] = layout.insert(messages, injection)
        elif memory is not None:
            headers[MEMORY] = "off"
        try:
            answer = await upstream.open("POST", "/chat/completions",
                                         upstream.headers(request.headers, pass_authorization=not auth.enabled), body)
        except UpstreamError as exc:
            return openai_error(exc.status, str(exc), "upstream_error", exc.code, headers)
        headers.update(response_headers(answer))
        user_turn = layout.latest_user_turn(messages)
        streamed = answer.headers.get("content-type", "").startswith("text/event-stream")

        def store(text: str, model: str | None) -> BackgroundTask | None:
            if memory is None or not turn.remember or answer.status_code != 200:
                return None
            return BackgroundTask(_remember, injector, memory, turn, user_turn, text,
                                  model or body.get("model"))

        if not streamed:
            try:
                data = await answer.aread()
            finally:
                await answer.aclose()
            text, model = answer_of(data) if answer.status_code == 200 else ("", None)
            return Response(data, status_code=answer.status_code, headers=headers, background=store(text, model))
        seen = StreamText()

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_bytes():
                    seen.feed(chunk)
                    yield chunk
            except httpx.HTTPError as exc:  # the upstream broke off mid-answer: the status is sent, say it in the stream
                log.warning("upstream stream broke off", extra={"fields": {"error": type(exc).__name__}})
                error = {"error": {"message": f"the upstream broke off the answer: {type(exc).__name__}",
                                   "type": "upstream_error", "param": None, "code": "upstream_broken"}}
                yield f"data: {json.dumps(error)}\n\n".encode()
            finally:
                await answer.aclose()

        async def after() -> None:
            if seen.done:  # a stream cut short is not stored: half an answer is not what was said
                task = store(seen.text, seen.model)
                if task is not None:
                    await task()

        return StreamingResponse(relay(), status_code=answer.status_code, headers=headers,
                                 media_type=answer.headers.get("content-type"), background=BackgroundTask(after))

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/v1/models", models, methods=["GET"])], lifespan=lifespan,
                     middleware=[Middleware(RequestMiddleware, max_body_bytes=options.max_body_bytes)])


def _turn(request: Request, body: dict[str, Any], options: ProxyOptions, keyed: Principal | None) -> Turn:
    """The request's memory options; the `engram` field leaves the body here. `keyed`:
    with Engram keys, the caller, whose key's users bound the user (or give its default)."""
    extra = body.pop("engram", None)
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise InvalidInputError("the `engram` field must be an object, e.g. {\"user_id\": \"alice\"}")
    unknown = set(extra) - OPTION_KEYS
    if unknown:
        raise InvalidInputError(f"unknown `engram` options {sorted(unknown)}; known: {sorted(OPTION_KEYS)}")
    given = request.headers.get("x-engram-user") or extra.get("user_id") or body.get("user")
    if given is not None:
        check_name("user id", given, required=True)
    if keyed is not None:
        user = keyed.users.user(given)  # checked against the key's users; its default user when none is named
    elif given is not None:
        user = given
    elif options.default_user is not None:
        user = options.default_user
    else:
        raise InvalidInputError("name the user whose memory this is: the X-Engram-User header, "
                                "`engram.user_id`, or OpenAI's `user` field")
    session = request.headers.get("x-engram-session") or extra.get("session_id")
    check_name("session id", session, required=False)
    budget: Any = request.headers.get("x-engram-budget") or extra.get("budget_tokens") or options.budget_tokens
    try:
        budget = int(budget) if not isinstance(budget, bool) else None
    except (TypeError, ValueError):
        budget = None
    if budget is None or not layout.MIN_BUDGET_TOKENS <= budget <= 1_000_000:
        raise InvalidInputError(f"the memory budget must be an integer from {layout.MIN_BUDGET_TOKENS} to "
                                "1000000 tokens")
    flags = {}
    for name in ("recall", "remember"):
        value = extra.get(name, True)
        if not isinstance(value, bool):
            raise InvalidInputError(f"engram.{name} must be true or false")
        flags[name] = value
    return Turn(user, session, budget, **flags)


async def _open(memories: Callable[[Principal], Any], who: Principal, headers: dict[str, str]) -> Any:
    """The caller's memory (a tenant's store opens on first use), or None (and
    `unavailable` in the headers) when it cannot be opened: the chat goes on without it."""
    try:
        return await run_in_threadpool(memories, who)
    except Exception as exc:  # as in _lookup: Engram's failure never blocks the chat
        log.warning("memory unavailable; forwarding without memory", exc_info=not isinstance(exc, EngramError),
                    extra={"fields": {"error": type(exc).__name__}})
        headers[MEMORY] = "unavailable"
        headers["X-Engram-Memory-Error"] = type(exc).__name__
        return None


async def _lookup(injector: Injector, memory: Any, turn: Turn, messages: list, options: ProxyOptions,
                  headers: dict[str, str]) -> layout.Injection | None:
    """The memory message, or None (and `unavailable` in the headers) when Engram failed
    or was slower than `memory_timeout_s`: the chat goes on without it."""
    started = time.perf_counter()
    try:
        injection = await asyncio.wait_for(
            run_in_threadpool(injector.lookup, memory, turn.user_id, messages, turn.budget_tokens, turn.session_id),
            timeout=options.memory_timeout_s)
    except Exception as exc:  # any failure of Engram's, a bug included: logged, said in a header, never blocking
        kind = "Timeout" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
        log.warning("memory lookup failed; forwarding without memory",
                    exc_info=not isinstance(exc, (EngramError, asyncio.TimeoutError)),
                    extra={"fields": {"error": kind}})
        headers[MEMORY] = "unavailable"
        headers["X-Engram-Memory-Error"] = kind
        return None
    headers[MEMORY] = "injected" if injection.sections else "empty"
    headers["X-Engram-Memories"] = str(injection.count)
    headers["X-Engram-Memory-Ms"] = f"{(time.perf_counter() - started) * 1000:.1f}"  # the lookup, as waited for
    return injection


async def _remember(injector: Injector, memory: Any, turn: Turn, user_turn: Any, text: str,
                    model: str | None) -> None:
    try:
        await run_in_threadpool(injector.remember, memory, turn.user_id, user_turn, text, model, turn.session_id)
    except Exception as exc:  # the answer is out; a store that failed is logged, with what failed
        log.warning("the exchange was not stored", exc_info=not isinstance(exc, EngramError),
                    extra={"fields": {"error": type(exc).__name__, "message": str(exc)[:200]}})


def _engram_error(exc: EngramError) -> JSONResponse:
    status = status_of(exc)
    if status == 422:
        status = 400  # OpenAI's status for a bad request
    kind = {401: "authentication_error", 403: "permission_error"}.get(status, "invalid_request_error"
                                                                       if status < 500 else "engram_error")
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return openai_error(status, str(exc), kind, type(exc).__name__, headers)
