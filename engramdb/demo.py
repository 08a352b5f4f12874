"""`engram demo`: load a bundled sample conversation, then ask it questions.

The sample (``engramdb/data/sample_conversation.json``) is three sessions between a
user, Alice, and her assistant. The demo stores it, answers a few questions with
`Memory.search`, and builds one prompt block with `Memory.context`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .memory import Memory
    from .types import Hit

SAMPLE = "sample_conversation.json"
QUESTIONS = (
    "Where does Alice live now?",
    "What does Alice do for work?",
    "What is the name of Alice's dog?",
    "What food does Alice like?",
    "When does Alice fly to Japan?",
)
CONTEXT_QUESTION = "Suggest a restaurant for Alice in her new city"
CONTEXT_BUDGET = 200
TOP_HITS = 3


@dataclass(frozen=True)
class Answer:
    question: str
    hits: list[Hit]

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "hits": [h.to_dict() for h in self.hits]}


def load_sample() -> dict[str, Any]:
    """The bundled conversation: {"user_id": …, "sessions": [{"session_id", "messages"}]}."""
    text = resources.files("engramdb").joinpath("data", SAMPLE).read_text(encoding="utf-8")
    return json.loads(text)


def ingest(memory: Memory, sample: dict[str, Any]) -> int:
    """Store every session of `sample`; a store that already holds it is left alone.
    Returns how many turns were added."""
    user_id = sample["user_id"]
    first = sample["sessions"][0]["messages"][0]["id"]
    if memory.list(user_id=user_id, filters={"source": first}, limit=1):
        return 0
    added = 0
    for session in sample["sessions"]:
        added += len(memory.add(session["messages"], user_id=user_id, session_id=session["session_id"]))
    return added


def distilled(memory: Memory, user_id: str, timeout: float = 120.0) -> list:
    """Wait for the background distillation, then the facts and preferences it keeps
    (current ones first, then those a newer one retired), in time order."""
    memory.flush(timeout)
    kinds = {"kind": {"in": ["fact", "preference"]}}
    return memory.list(user_id=user_id, filters=kinds, include_retired=True, limit=100)


def ask(memory: Memory, user_id: str, questions: tuple[str, ...] = QUESTIONS, limit: int = TOP_HITS) -> list[Answer]:
    return [Answer(q, memory.search(q, user_id=user_id, limit=limit)) for q in questions]
