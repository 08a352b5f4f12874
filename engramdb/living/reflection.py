"""Reflection: with an LLM configured, a background job forms thoughts from a scope's
recent turns itself.

Batched: `Memory.add` gathers each new turn into its scope's (user, agent) reflection
job (stores/thoughts_sql.gather), which is queued once it names
`Config.reflect_every_turns` turns; the runner's lane (distill.Distiller) hands it here.
One job is one LLM call, with no retry inside it (no schema negotiation, no repair): at
most one call per `reflect_every_turns` new turns. A dead server fails the job, which is
retried with backoff like any other.

What the model says is data too: every thought must cite turns of its input (by the
aliases "T1", "T2", … it was shown), is checked like `think()`'s text, and is dropped
when its own text reads as an instruction. Flagged turns (guard.py) are never shown to
the model, so nothing injected is ever distilled as a thought."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import guard
from ..clock import Clock, format_ts
from ..config import Config
from ..errors import InvalidInputError
from ..extract.lenient_json import loads
from ..keys import index_text
from ..providers.chat import ChatClient
from ..stores.base import REFLECT, Job, JobOutcome, Store
from ..types import Record, Scope
from .thinking import absorb_similar, new_thought
from .thoughts import check_thought

log = logging.getLogger("engramdb.reflection")

MAX_TURNS = 200  # newest turns of a job shown to the model (a larger backlog: the newest)
MAX_TURN_CHARS = 2000  # a longer turn is shown cut
MAX_THOUGHTS = 5  # per call
MAX_TEXT = 500


def reflection_model(config: Config) -> str | None:
    """The model reflection uses, or None when reflection is off: switched off, or no LLM
    configured (an "llm:<model>" extractor, or `reflection_model` with the server's
    `llm_base_url` or an `llm_api_key` for the default one)."""
    if not (config.thoughts and config.reflection):
        return None
    extractor = config.extractor or ""
    if extractor.startswith("llm:"):
        return config.reflection_model or extractor[len("llm:"):]
    if config.reflection_model and (config.llm_base_url or config.llm_api_key):
        return config.reflection_model
    return None


def prompt_text() -> str:
    from ..extract.llm import prompt

    return prompt("reflect").replace("{max_thoughts}", str(MAX_THOUGHTS))


def render(turns: list[Record]) -> tuple[str, dict[str, Record]]:
    """The turns as the model sees them (JSON: their text is data inside strings), and
    alias -> turn."""
    aliases = {f"T{i}": t for i, t in enumerate(turns, 1)}
    rows = [{"id": alias, "date": t.created_at[:10], "speaker": t.name or t.role or "user",
             "text": t.text[:MAX_TURN_CHARS]} for alias, t in aliases.items()]
    return json.dumps(rows, ensure_ascii=False), aliases


def read_reply(text: str, aliases: dict[str, Record], *, max_chars: int) -> list[tuple[str, list[Record]]]:
    """The valid thoughts of a reply: (text, the turns it cites). Anything else is dropped."""
    try:
        data = loads(text)
    except ValueError as exc:
        log.warning("unreadable reflection reply (%s)", exc)
        return []
    items = data.get("thoughts") if isinstance(data, dict) else data if isinstance(data, list) else None
    out: list[tuple[str, list[Record]]] = []
    seen: set[str] = set()
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        cited = item.get("sources")
        if not isinstance(cited, list):
            continue
        if not cited or not all(isinstance(c, str) and c in aliases for c in cited):
            continue  # cites nothing, or something that was not in its input
        turns = [aliases[c] for c in dict.fromkeys(cited)]
        try:
            thought, _ = check_thought(item.get("text"), [t.id for t in turns], max_chars=min(max_chars, MAX_TEXT))
        except InvalidInputError:
            continue
        thought = " ".join(thought.split())
        if guard.candidate_is_tainted(thought, [t.metadata.get(guard.METADATA_KEY) for t in turns]):
            continue
        if thought.lower() in seen:
            continue
        seen.add(thought.lower())
        out.append((thought, turns))
        if len(out) >= MAX_THOUGHTS:
            break
    return out


class Reflector:
    """Runs reflection jobs of one store (a handler of its Distiller lane)."""

    def __init__(self, store: Store, client: Any, embed: Callable[[list[str]], np.ndarray], clock: Clock, *,
                 threshold: float, max_chars: int) -> None:
        self._store = store
        self._client = client
        self._embed = embed
        self._clock = clock
        self._threshold = threshold
        self._max_chars = max_chars
        self._system = prompt_text()
        self.calls = 0
        self.name = f"reflect:{getattr(client, 'model', 'llm')}"

    @classmethod
    def from_config(cls, store: Store, config: Config, embed: Callable[[list[str]], np.ndarray],
                    clock: Clock) -> "Reflector | None":
        model = reflection_model(config)
        if model is None:
            return None
        client = ChatClient(model, base_url=config.llm_base_url, api_key=config.llm_api_key,
                            timeout_s=config.llm_timeout_s, max_tokens=1024)
        return cls(store, client, embed, clock, threshold=config.thought_merge_threshold,
                   max_chars=config.max_message_chars)

    def run_job(self, job: Job) -> list[Record]:
        """Reflect on a job's turns: at most one LLM call; the thoughts it forms are
        written with the job's end, then merged with their kin. Errors are raised (the
        lane records them on the job)."""
        turns = [r for r in self._store.records_by_ids(job.record_ids, job.scope.user_id) if r.kind == "turn"]
        clean = [t for t in turns if not t.metadata.get(guard.METADATA_KEY)][-MAX_TURNS:]
        found: list[tuple[str, list[Record]]] = []
        if clean:
            shown, aliases = render(clean)
            self.calls += 1
            reply = self._client.complete([{"role": "system", "content": self._system},
                                           {"role": "user", "content": shown}])
            found = read_reply(reply.text, aliases, max_chars=self._max_chars)
        at = self._now()
        inserts = [new_thought(text, Scope(job.scope.user_id, job.scope.agent_id, _session(cited)), cited, at=at,
                               metadata={"reason": "reflection"}) for text, cited in found]
        vectors = (self._embed([index_text(r.text, None) for r in inserts]) if inserts
                   else np.zeros((0, 0), dtype=np.float32))
        written = self._store.complete_job(job, JobOutcome(inserts, vectors), at=at, actor=self.name)
        by_id = {r.id: i for i, r in enumerate(inserts)}
        return [absorb_similar(self._store, r, vectors[by_id[r.id]], threshold=self._threshold, at=at,
                               actor=self.name) for r in written if r.id in by_id]

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if callable(close):
            close()

    def _now(self) -> str:
        return format_ts(self._clock.now())


def _session(turns: list[Record]) -> str | None:
    """A thought's session: its turns' one session, or none when they span several."""
    sessions = {t.session_id for t in turns}
    return sessions.pop() if len(sessions) == 1 else None

