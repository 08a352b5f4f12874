"""A chat client for any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp).

One call, one `ChatReply` with the model's text and its token counts. A dead server,
a timeout, a 5xx or a reply that is not a chat completion raises ProviderError: the
caller keeps its turns and retries later. A server that rejects `response_format`
raises SchemaRejected once, and is not offered a schema again."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import ProviderError


@dataclass(frozen=True)
class ChatReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    structured: bool  # whether the server was asked for schema-constrained output


class SchemaRejected(ProviderError):
    """The server refused `response_format` json_schema; ask again in plain words."""


class ChatClient:
    def __init__(self, model: str, *, base_url: str | None, api_key: str | None = None, timeout_s: float = 60.0,
                 max_tokens: int = 2048, temperature: float = 0.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.schema_supported: bool | None = None  # unknown until the server answers
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=(base_url or "https://api.openai.com/v1").rstrip("/") + "/",
                                    headers=headers, timeout=timeout_s, transport=transport)

    def complete(self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None,
                 schema_name: str = "reply") -> ChatReply:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                "max_tokens": self.max_tokens}
        structured = schema is not None and self.schema_supported is not False
        if structured:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": schema_name, "schema": schema, "strict": False}}
        started = time.perf_counter()
        response = self._post(body)
        if structured and response.status_code in (400, 422):
            self.schema_supported = False
            raise SchemaRejected(f"chat server refused a JSON schema ({response.status_code}): {response.text[:200]}")
        if structured and response.status_code == 200:
            self.schema_supported = True
        if response.status_code != 200:
            raise ProviderError(f"chat server answered {response.status_code}: {response.text[:200]}")
        try:
            payload = response.json()
            text = payload["choices"][0]["message"]["content"]
            usage = payload.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError(f"chat server sent a malformed reply: {exc!r}") from exc
        return ChatReply(text if isinstance(text, str) else "", prompt_tokens, completion_tokens,
                         time.perf_counter() - started, structured)

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        try:
            return self._client.post("chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise ProviderError(f"chat server timed out: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"chat server unreachable: {exc}") from exc

    def close(self) -> None:
        self._client.close()
