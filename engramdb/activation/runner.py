"""States read in the background: when a user's memories change (a distillation job,
an erasure, an update: `Memory.changes`), the user's new stable block is read by the
model and kept, so that the next chat turn finds it. Never in `add()`'s path: the
listener only queues the user; one daemon thread reads, at most one user at a time,
holding the engine's lock (shared with the chat)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from ..changes import Change
from .engine import Engine
from .prompt import stable_block
from .states import keep, prefix_of, present

log = logging.getLogger("engramdb.activation")


class Runner:
    """Keeps the states of `user_ids` (None: of every user a change names) current."""

    def __init__(self, memory: Any, engine: Engine, *, user_ids: Iterable[str] | None = None,
                 budget_tokens: int | None = None, lock: threading.Lock | None = None) -> None:
        self.memory = memory
        self.engine = engine
        self.users = None if user_ids is None else set(user_ids)
        self.budget_tokens = budget_tokens or memory.config.activation_block_tokens
        self.lock = lock or threading.Lock()
        self.read = 0  # states read and kept
        self._queue: dict[str, None] = {}
        self._wake = threading.Condition()
        self._busy = False
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="engram-activation", daemon=True)
        self._unsubscribe = memory.changes.subscribe(self._changed)
        self._thread.start()

    def touch(self, user_id: str) -> None:
        """Read this user's block now (in the background) if it has no state yet."""
        with self._wake:
            self._queue[user_id] = None
            self._wake.notify()

    def _changed(self, change: Change) -> None:
        if not self.memory.config.activation:
            return
        users = ([change.user_id] if change.user_id is not None else sorted(self.users or ()))
        for user in users:
            if self.users is None or user in self.users:
                self.touch(user)

    def wait(self, timeout: float | None = None) -> bool:
        """Until nothing is queued or being read; False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stop(self) -> None:
        self._unsubscribe()
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self._thread.join(10)

    def _loop(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._queue or self._stopped)
                if self._stopped:
                    return
                user = next(iter(self._queue))
                del self._queue[user]
                self._busy = True
            try:
                self._refresh(user)
            except Exception:  # the next change tries again; the chat reads the block itself meanwhile
                log.exception("reading the activation state of a user failed")
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _refresh(self, user_id: str) -> None:
        block = stable_block(self.memory, user_id, self.budget_tokens)
        prefix = prefix_of(self.memory, self.engine, block, user_id)
        cache = self.memory.activation_states
        with self.lock:
            if not present(self.memory, cache, prefix, user_id):
                keep(self.memory, self.engine, cache, prefix, user_id)
                self.read += 1
