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


SHAPES = ("plain", "prefixed", "long")  # how the turns are sent: see `reshape`
LONG_CHARS = 2400  # a `long` message holds turns until it reaches this (~600 tokens, past MiniLM's 256 word pieces)


def reshape(conversations: list[Conversation], shape: str) -> list[Conversation]:
    """The conversations as another kind of caller sends them (issue 14):

    - `plain`: as `load` gives them (content without the speaker, turns a second apart);
    - `prefixed`: `content = "Speaker: text"` with `name = Speaker`, and one timestamp per
      session (every turn of a session shares the session's date), as many exports look;
    - `long`: each session's turns, as "Speaker: text" lines, joined into a few long
      messages of about LONG_CHARS characters (no name, the session's date), each with
      the id of its first turn and its last ("D1:1..D1:9"); a question's evidence is
      the long messages that hold its turns."""
    if shape not in SHAPES:
        raise InvalidInputError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")
    if shape == "plain":
        return list(conversations)
    return [_prefixed(c) if shape == "prefixed" else _long(c) for c in conversations]


def _session_start(messages: list[dict[str, Any]]) -> str:
    return messages[0]["timestamp"] if messages else ""


def _prefixed(conv: Conversation) -> Conversation:
    sessions = []
    for session_id, messages in conv.sessions:
        at = _session_start(messages)
        sessions.append((session_id, [{**m, "content": f"{m['name']}: {m['content']}", "timestamp": at}
                                      for m in messages]))
    return Conversation(conv.sample_id, conv.speakers, sessions, conv.questions)


def _long(conv: Conversation) -> Conversation:
    sessions, holder = [], {}
    for session_id, messages in conv.sessions:
        at, groups, current, size = _session_start(messages), [], [], 0
        for m in messages:
            current.append(m)
            size += len(m["name"]) + len(m["content"]) + 3
            if size >= LONG_CHARS:
                groups.append(current)
                current, size = [], 0
        if current:
            groups.append(current)
        joined = []
        for group in groups:
            long_id = f"{group[0]['id']}..{group[-1]['id']}"
            holder.update({m["id"]: long_id for m in group})
            joined.append({"role": "user", "id": long_id, "timestamp": at,
                           "content": "\n".join(f"{m['name']}: {m['content']}" for m in group)})
        sessions.append((session_id, joined))
    questions = [Question(q.conversation, q.text, q.answer, q.category, frozenset(holder[e] for e in q.evidence))
                 for q in conv.questions]
    return Conversation(conv.sample_id, conv.speakers, sessions, questions)
