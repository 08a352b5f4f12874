"""The ASGI layer every request passes first: a request id in and out, a cap on the
body size (413), JSON bodies read as JSON whatever their content type says, and one
access-log line when the response is done."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    AuthenticationError,
    ConfigError,
    EngramError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    StorageError,
    UsageError,
)
from .logs import log_request

REQUEST_ID = "X-Request-ID"
JSON_METHODS = ("POST", "PATCH", "PUT")
NOT_JSON_ROUTES = ("/v1/import",)  # a cube: JSON lines, read as bytes
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# The HTTP status of each Engram error, most specific first.
STATUS: list[tuple[type[EngramError], int]] = [
    (AuthenticationError, 401), (PermissionDeniedError, 403), (NotFoundError, 404), (InvalidInputError, 422),
    (ConfigError, 400), (UsageError, 400), (MissingDependencyError, 503), (ProviderError, 502),
    (StorageError, 503), (EngramError, 500),
]


def status_of(exc: EngramError) -> int:
    return next(code for cls, code in STATUS if isinstance(exc, cls))


def request_id_of(scope: Scope) -> str:
    return scope.get("state", {}).get("request_id", "")


def error_body(kind: str, message: str, request_id: str) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message, "request_id": request_id}}).encode()


async def send_error(send: Send, status: int, kind: str, message: str, request_id: str,
                     headers: dict[str, str] | None = None) -> None:
    body = error_body(kind, message, request_id)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _json_content_type(scope: Scope) -> None:
    """Every body the REST API reads is JSON: one sent without a content type, as
    text/plain, or as a form (what `curl -d` says) is read as the JSON it is, not refused.
    A body that is not JSON then gets the usual 400."""
    if scope.get("method") not in JSON_METHODS:
        return
    path = scope.get("path", "")
    if not path.startswith("/v1/") or path in NOT_JSON_ROUTES:
        return
    raw = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"]
    declared = [v for k, v in scope.get("headers", []) if k.lower() == b"content-type"]
    if declared and _is_json(declared[0]):
        return
    scope["headers"] = [*raw, (b"content-type", b"application/json")]


def _is_json(content_type: bytes) -> bool:
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        _json_content_type(scope)
        headers = Headers(scope=scope)
        given = headers.get(REQUEST_ID, "")
        rid = given if _GOOD_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID] = rid
            await send(message)

        try:
            receive = await self._bounded(scope, headers, receive, send_with_id, rid)
            if receive is not None:
                await self.app(scope, receive, send_with_id)
        finally:
            principal = state.get("principal")
            route = scope.get("route")
            log_request({
                "request_id": rid,
                "tenant": getattr(principal, "tenant", None),
                "key_id": getattr(principal, "key_id", None),
                "method": scope.get("method"),
                "route": getattr(route, "path", None) or scope.get("path"),
                "status": status["code"],
                "ms": round((time.perf_counter() - started) * 1000, 2),
            })

    async def _bounded(self, scope: Scope, headers: Headers, receive: Receive, send: Send, rid: str) -> Receive | None:
        """`receive` when the body fits; None after answering 413 (or 400) when not."""
        limit = self.max_body_bytes
        too_big = f"the request body is larger than {limit} bytes"
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_error(send, 400, "InvalidInputError", "Content-Length is not a number", rid)
                return None
            if int(declared) > limit:
                await send_error(send, 413, "InvalidInputError", too_big, rid, {"connection": "close"})
                return None
            return receive
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return receive
        # A chunked body: read it here, up to the limit, and replay it.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return receive  # the client went away; let the app see it
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await send_error(send, 413, "InvalidInputError", too_big, rid, {"connection": "close"})
                return None
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay
