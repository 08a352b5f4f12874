"""A deterministic embedder for tests of behaviour that is not retrieval quality.

Hashes word unigrams into a fixed number of buckets: texts sharing words get similar
vectors, nothing is downloaded, and the same text always gives the same vector."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from .base import l2_normalize

_WORD = re.compile(r"\w+")


class FakeEmbedder:
    def __init__(self, dim: int = 64, name: str = "fake-hash") -> None:
        self.dim = dim
        self.name = f"{name}-{dim}"
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()) or [text]:
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, bucket] += sign
        out[np.all(out == 0, axis=1), 0] = 1.0
        return l2_normalize(out)
