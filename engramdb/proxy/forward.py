"""The upstream: any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, LM Studio),
reached with one pooled httpx client. Responses are opened as streams, so that a
streamed answer passes through chunk by chunk, never buffered; a server that cannot be
reached (or does not answer in time) is an `UpstreamError`, which the app turns into
a 502 (504 for a timeout) in OpenAI's error shape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import ProviderError

CONNECT_TIMEOUT_S = 10.0
# Request headers passed on to the upstream (besides the Authorization it gets).
PASSED_REQUEST = ("accept", "openai-organization", "openai-project", "openai-beta", "x-request-id")
# Upstream response headers passed back to the caller.
PASSED_RESPONSE_PREFIXES = ("x-ratelimit-", "openai-")
PASSED_RESPONSE = ("content-type", "x-request-id", "retry-after")


class UpstreamError(ProviderError):
    """The upstream could not be reached, or broke off, or did not answer in time."""

    def __init__(self, message: str, *, status: int = 502, code: str = "upstream_unreachable") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Upstream:
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 600.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
                                         transport=transport, limits=httpx.Limits(max_keepalive_connections=64))

    def headers(self, incoming: Mapping[str, str], *, pass_authorization: bool) -> dict[str, str]:
        """The headers the upstream gets: a few of the caller's, and the Authorization of
        `--upstream-key` when set, else the caller's own when `pass_authorization` (the
        proxy without Engram keys, in front of a server that wants the caller's key)."""
        out = {name: incoming[name] for name in PASSED_REQUEST if name in incoming}
        out["accept-encoding"] = "identity"  # no decompression between the upstream and the caller
        if self.api_key:
            out["authorization"] = f"Bearer {self.api_key}"
        elif pass_authorization and "authorization" in incoming:
            out["authorization"] = incoming["authorization"]
        return out

    async def open(self, method: str, path: str, headers: Mapping[str, str],
                   body: Mapping[str, Any] | None = None) -> httpx.Response:
        """The upstream's response with its body not yet read (`aclose()` it)."""
        url = self.base_url + path
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        request = self._client.build_request(method, url, headers={
            **headers, **({"content-type": "application/json"} if content is not None else {})}, content=content)
        try:
            return await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"the upstream {self.base_url} did not answer in time ({type(exc).__name__})",
                                status=504, code="upstream_timeout") from None
        except httpx.TransportError as exc:
            raise UpstreamError(f"the upstream {self.base_url} cannot be reached: {type(exc).__name__}: "
                                f"{exc or 'no detail'}") from None

    async def aclose(self) -> None:
        await self._client.aclose()


def response_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items()
            if name in PASSED_RESPONSE or name.startswith(PASSED_RESPONSE_PREFIXES)}


class StreamText:
    """The assistant's text, read from the server-sent events of a streamed answer as
    they pass (first choice's `delta.content`); `done` once `data: [DONE]` went by."""

    def __init__(self) -> None:
        self._pending = b""
        self.parts: list[str] = []
        self.model: str | None = None
        self.done = False

    def feed(self, chunk: bytes) -> None:
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for raw in lines:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                self.done = True
                continue
            try:
                event = json.loads(data)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if isinstance(event.get("model"), str):
                self.model = event["model"]
            for choice in event.get("choices") or ():
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    content = (choice.get("delta") or {}).get("content")
                    if isinstance(content, str):
                        self.parts.append(content)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def answer_of(body: bytes) -> tuple[str, str | None]:
    """The assistant's text and the model of a (not streamed) chat completion."""
    try:
        data = json.loads(body)
        message = data["choices"][0]["message"]
        content = message.get("content")
        model = data.get("model")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "", None
    return (content if isinstance(content, str) else ""), (model if isinstance(model, str) else None)
