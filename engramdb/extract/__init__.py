"""Extraction: distilling turns into candidate memories (facts, preferences, events,
summaries) for the reconciler. See `base` for the typed hand-off.

    offline       spaCy + rules, no LLM (the default)
    llm:<model>   any OpenAI-compatible chat server
    fake          one candidate per turn, for tests

Backends are imported only when chosen; nothing here loads a model."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Candidate, Entity, ExtractionResult, Extractor, Skipped, TurnInput, TurnNotes

__all__ = ["Candidate", "Entity", "ExtractionResult", "Extractor", "Skipped", "TurnInput", "TurnNotes",
           "make_extractor", "EXTRACTORS"]

EXTRACTORS = ("offline", "llm:<model>", "fake")


def make_extractor(name: str, *, base_url: str | None = None, api_key: str | None = None,
                   timeout_s: float = 60.0, batch_size: int = 8) -> Extractor:
    """Build the extractor `name` names."""
    if name == "offline":
        from .offline import OfflineExtractor

        return OfflineExtractor()
    if name == "fake":
        from .fake import FakeExtractor

        return FakeExtractor()
    if name.startswith("llm:") and name[len("llm:"):]:
        from .llm import LLMExtractor

        return LLMExtractor(name[len("llm:"):], base_url=base_url, api_key=api_key, timeout_s=timeout_s,
                            batch_size=batch_size)
    raise ConfigError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
