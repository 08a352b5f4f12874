"""The one place Engram imports onnxruntime, so that it never phones home.

Importing onnxruntime writes a device id under ~/.cache/Microsoft/DeveloperTools/ unless
ORT_DISABLE_TELEMETRY is set before the first import, and it sends usage events unless
`disable_telemetry_events()` is called; both are done here."""

from __future__ import annotations

import os
from types import ModuleType


def import_onnxruntime() -> ModuleType:
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    return onnxruntime


def import_before_usearch() -> None:
    """usearch 2.26 loaded before onnxruntime 1.31 makes onnxruntime segfault later in
    the process; the other order is safe. Called before usearch is imported."""
    try:
        import_onnxruntime()
    except ImportError:
        pass
