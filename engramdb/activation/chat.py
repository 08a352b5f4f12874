"""A chat turn with memory on a local model: the user's stable block read from its kept
state (or read now and kept), then only the turn evaluated (`engram chat`).

The prompt: Engram's system message with the stable block (the cached prefix), the
conversation so far, the memories that match the latest message as a system message
just before it (engramdb/activation/prompt.py). The exchange is stored with `add` after
the answer, as the proxy does; distillation runs in the background and, when it changes
the block, the runner (runner.py) reads the new one before the next turn needs it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..proxy import layout
from .engine import MAX_TOKENS, Engine
from .prompt import conversation_segments, stable_block
from .states import cached, keep, prefix_of

RECALL_TOKENS = 400  # the memories matching the latest message, beside the block


@dataclass
class Reply:
    """One answer, streamed: iterate it for text pieces; then `text`, `cached` (the block's
    state came from disk), `prefix_tokens`, `prompt_tokens` and `first_token_s`."""

    cached: bool
    prefix_tokens: int
    prompt_tokens: int
    _pieces: Iterator[str]
    _started: float
    _done: Any
    text: str = ""
    first_token_s: float | None = None
    _parts: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        finished = False
        try:
            for piece in self._pieces:
                if self.first_token_s is None:
                    self.first_token_s = time.perf_counter() - self._started
                self._parts.append(piece)
                yield piece
            finished = True
        finally:
            self.text = "".join(self._parts)
            self._done(self.text if finished else None)


class Chat:
    """A conversation of `user_id` with the model behind `engine`. `remember=False`: the
    exchange is not stored. `lock`: shared with a runner over the same engine."""

    def __init__(self, memory: Any, engine: Engine, *, user_id: str, budget_tokens: int | None = None,
                 recall_tokens: int = RECALL_TOKENS, remember: bool = True, max_tokens: int = MAX_TOKENS,
                 lock: threading.Lock | None = None, session_id: str | None = None) -> None:
        self.memory = memory
        self.engine = engine
        self.user_id = user_id
        self.session_id = session_id
        self.budget_tokens = budget_tokens or memory.config.activation_block_tokens
        self.recall_tokens = recall_tokens
        self.remember = remember
        self.max_tokens = max_tokens
        self.lock = lock or threading.Lock()
        self.messages: list[dict[str, str]] = []

    def say(self, text: str) -> Reply:
        """The answer to `text`, streamed (the engine is held until it is read through)."""
        started = time.perf_counter()
        block = stable_block(self.memory, self.user_id, self.budget_tokens)
        prefix = prefix_of(self.memory, self.engine, block, self.user_id)
        recalled = self._recalled(text, block.sources)
        messages = [*self.messages, {"role": "user", "content": text}]
        suffix = self.engine.tokens(conversation_segments(messages, recalled))
        self.lock.acquire()
        try:
            on = self.memory.config.activation
            cache = self.memory.activation_states
            state = cached(self.memory, cache, prefix, self.user_id) if on else None
            hit = state is not None
            if on and state is None:
                state = keep(self.memory, self.engine, cache, prefix, self.user_id)
            tokens = prefix.tokens + suffix
            pieces = self.engine.answer(tokens, prefix=len(prefix.tokens), state=state, max_tokens=self.max_tokens)
        except BaseException:
            self.lock.release()
            raise

        def done(answer: str | None) -> None:
            self.lock.release()
            if answer is None:  # broken off: nothing said, nothing stored
                return
            self.messages += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
            if self.remember:
                self.memory.add(self.messages[-2:], user_id=self.user_id, session_id=self.session_id,
                                agent_id="engram-chat", skip_empty=True)

        return Reply(hit, len(prefix.tokens), len(tokens), pieces, started, done)

    def _recalled(self, text: str, shown: Any) -> str:
        if not text.strip() or self.recall_tokens < layout.MIN_BUDGET_TOKENS:
            return ""
        found = self.memory.recall(" ".join(text.split())[-2000:], user_id=self.user_id,
                                   budget_tokens=self.recall_tokens)
        hits = [h for h in found.hits if h.id not in shown]
        part = layout.section(layout.QUERY_TITLE, layout.not_in_conversation(hits, self.messages),
                              self.recall_tokens, text)
        message = layout.system_message([part]).message
        return "" if message is None else message["content"]
