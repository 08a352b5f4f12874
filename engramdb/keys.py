"""What a memory is indexed under (its keyword and vector keys).

A turn is indexed with its speaker: questions name people ("what did Caroline paint?"),
and a bare "I painted a lake" matches them neither by keyword nor by meaning. On LoCoMo
this lifted dense evidence recall@10 from 0.31 to 0.45 (`engram bench locomo`)."""

from __future__ import annotations

import hashlib


def index_text(text: str, name: str | None) -> str:
    return f"{name}: {text}" if name else text


def content_hash(text: str) -> str:
    """A text's key for exact lookups (and what a tombstone keeps of an erased text)."""
    return hashlib.sha256(text.encode()).hexdigest()
