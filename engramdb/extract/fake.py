"""A fake Extractor for tests of what runs around extraction (job queue, retries).

Every user turn becomes one `fact` candidate holding its text; `fail_times` makes the
first calls raise ProviderError, as a dead LLM server would."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ProviderError
from .base import Candidate, ExtractionResult, TurnInput


class FakeExtractor:
    name = "fake"

    def __init__(self, *, fail_times: int = 0) -> None:
        self.fail_times = fail_times
        self.calls = 0

    def extract(self, turns: Sequence[TurnInput]) -> ExtractionResult:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise ProviderError(f"fake extractor failure {self.calls} of {self.fail_times}")
        result = ExtractionResult(calls=1)
        for turn in turns:
            if turn.role in ("user", "human") and turn.text.strip():
                result.candidates.append(Candidate(kind="fact", text=f"{turn.subject} said: {turn.text.strip()}",
                                                   subject=turn.subject, sources=(turn.id,),
                                                   said_at=turn.timestamp, confidence=1.0))
        return result
