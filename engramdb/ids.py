"""Memory ids: time-ordered, random, and never reused."""

from __future__ import annotations

import os
import time

PREFIX = "mem_"


def new_id() -> str:
    """A 128-bit id: 48 bits of milliseconds, then 80 random bits, in hex."""
    millis = time.time_ns() // 1_000_000
    return f"{PREFIX}{millis:012x}{os.urandom(10).hex()}"
