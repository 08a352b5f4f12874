"""Embeddings from any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np

from ..errors import ProviderError
from .base import l2_normalize


class OpenAIEmbedder:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        batch_size: int = 128,
        dim: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self.name = f"openai:{model}"
        self.batch_size = batch_size
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=(base_url or "https://api.openai.com/v1").rstrip("/") + "/",
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )
        self._dim = dim

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(self._request(list(texts[start:start + self.batch_size])))
        matrix = l2_normalize(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1))
        if self._dim is None and len(rows):
            self._dim = matrix.shape[1]
        return matrix

    def _request(self, batch: list[str]) -> list[list[float]]:
        try:
            response = self._client.post("embeddings", json={"model": self.model, "input": batch})
        except httpx.HTTPError as exc:
            raise ProviderError(f"embedding server unreachable: {exc}") from exc
        if response.status_code != 200:
            raise ProviderError(f"embedding server answered {response.status_code}: {response.text[:200]}")
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = [item["embedding"] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"embedding server sent a malformed reply: {exc}") from exc
        if len(vectors) != len(batch):
            raise ProviderError(f"embedding server returned {len(vectors)} vectors for {len(batch)} texts")
        return vectors

    def close(self) -> None:
        self._client.close()
