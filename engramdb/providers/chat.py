"""Chat completions from any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp):
one call, its text, its token usage and its time. Callers own prompts and parsing."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
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


class ChatClient:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ProviderError("a chat model name is required")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=(base_url or "https://api.openai.com/v1").rstrip("/") + "/",
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        response_format: Mapping[str, Any] | None = None,
    ) -> ChatReply:
        """One chat completion. A dead, failing or garbled server raises ProviderError."""
        body: dict[str, Any] = {
            "model": self.model, "messages": list(messages), "max_tokens": max_tokens, "temperature": temperature,
        }
        if response_format is not None:
            body["response_format"] = dict(response_format)
        start = time.perf_counter()
        try:
            response = self._client.post("chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise ProviderError(f"chat server unreachable: {exc}") from exc
        if response.status_code != 200:
            raise ProviderError(f"chat server answered {response.status_code}: {response.text[:200]}")
        try:
            payload = response.json()
            text = payload["choices"][0]["message"]["content"] or ""
            usage = payload.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError(f"chat server sent a malformed reply: {exc}") from exc
        if not isinstance(text, str):
            raise ProviderError("chat server sent a non-text message")
        return ChatReply(text, prompt_tokens, completion_tokens, time.perf_counter() - start)

    def close(self) -> None:
        self._client.close()
