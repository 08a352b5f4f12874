"""What changed in a store, for whoever derives something from it outside the store
(engramdb/activation/ keeps a local model's state after it read a user's memories).

`Memory.changes` is a `Changes` hub: `Memory` notifies it after an erasure, an update, a
forget or a reset (before the call returns) and after each background distillation job
(which may supersede or retract memories); a listener subscribed to it is called in the
thread that made the change, so it must be quick (queue the work, never run a model).
A failing listener is logged, never raised into the change that called it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("engramdb.changes")

DELETED, UPDATED, FORGOTTEN, RESET, DISTILLED = "deleted", "updated", "forgotten", "reset", "distilled"


@dataclass(frozen=True)
class Change:
    """A change to one user's memories (`user_id` None: every user's, a reset)."""

    user_id: str | None
    cause: str  # DELETED, UPDATED, FORGOTTEN, RESET or DISTILLED


Listener = Callable[[Change], None]


class Changes:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(change)` after each change; returns the function that stops it."""
        if not callable(listener):
            raise TypeError(f"a listener must be callable, got {type(listener).__name__}")
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def notify(self, change: Change) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(change)
            except Exception:  # a listener's bug never fails the erasure that called it
                log.exception("a change listener failed on %s", change)
