"""LoCoMo (Maharana et al., ACL 2024), read from where it lies: never copied into the repo.

`load()` turns each conversation into Engram messages (the turn's `dia_id` as message id,
the session's date as timestamp, an image's BLIP caption kept with the turn) and its
questions into `Question`s with normalised evidence ids (see the data README: packed
ids, malformed ids and ids of turns that do not exist)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PATH = REPO.parent / "shared" / "data" / "locomo" / "locomo10.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
_SESSION = re.compile(r"^session_(\d+)$")
_DIA = re.compile(r"^D(\d+):(\d+)$")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


@dataclass(frozen=True)
class Question:
    conversation: str
    text: str
    answer: str
    category: int
    evidence: frozenset[str]


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    speakers: tuple[str, str]
    sessions: list[tuple[str, list[dict[str, Any]]]]  # (session id, messages), in order
    questions: list[Question]

    @property
    def turn_count(self) -> int:
        return sum(len(messages) for _, messages in self.sessions)


def default_path() -> Path:
    return Path(os.environ.get("ENGRAM_LOCOMO") or DEFAULT_PATH)


def load(path: str | os.PathLike | None = None) -> list[Conversation]:
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        raise InvalidInputError(f"LoCoMo not found at {path}; set ENGRAM_LOCOMO to locomo10.json")
    return [_conversation(sample) for sample in json.loads(path.read_text())]


def session_time(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> an aware datetime (taken as UTC)."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=timezone.utc)


def locomo_date(moment: datetime) -> str:
    """An aware datetime -> '1:56 pm on 8 May, 2023': a session's date as LoCoMo writes
    it (the inverse of `session_time`, to the minute)."""
    hour, half = moment.hour % 12 or 12, "am" if moment.hour < 12 else "pm"
    return f"{hour}:{moment.minute:02d} {half} on {moment.day} {_MONTHS[moment.month - 1]}, {moment.year}"


def turn_text(turn: dict[str, Any]) -> str:
    text = (turn.get("text") or "").strip()
    caption = (turn.get("blip_caption") or "").strip()
    if caption:
        text = f"{text} [shares a photo: {caption}]".strip()
    return text


def _conversation(sample: dict[str, Any]) -> Conversation:
    conv = sample["conversation"]
    numbers = sorted(int(m.group(1)) for key in conv if (m := _SESSION.match(key)) and isinstance(conv[key], list))
    sessions = []
    known: set[str] = set()
    for number in numbers:
        start = session_time(conv[f"session_{number}_date_time"])
        messages = []
        for index, turn in enumerate(conv[f"session_{number}"]):
            known.add(turn["dia_id"])
            messages.append({
                "role": "user",
                "name": turn["speaker"],
                "content": turn_text(turn),
                "id": turn["dia_id"],
                "timestamp": (start + timedelta(seconds=index)).isoformat(),
            })
        sessions.append((f"session_{number}", messages))
    questions = []
    for qa in sample["qa"]:
        evidence = normalize_evidence(qa.get("evidence") or [], known)
        questions.append(Question(
            conversation=sample["sample_id"], text=qa["question"],
            answer=str(qa.get("answer", qa.get("adversarial_answer", ""))),
            category=int(qa["category"]), evidence=frozenset(evidence),
        ))
    return Conversation(sample["sample_id"], (conv["speaker_a"], conv["speaker_b"]), sessions, questions)


def normalize_evidence(raw: list[str], known: set[str]) -> set[str]:
    """Split packed ids ('D8:6; D9:17'), repair malformed ones ('D:11:26', 'D30:05'),
    and drop ids of turns that do not exist ('D', 'D10:19' in conv-42)."""
    out = set()
    for item in raw:
        for part in re.split(r"[;,\s]+", str(item)):
            part = part.strip()
            if part.startswith("D:"):
                part = "D" + part[2:]
            match = _DIA.match(part)
            if not match:
                continue
            part = f"D{int(match.group(1))}:{int(match.group(2))}"
            if part in known:
                out.add(part)
    return out
