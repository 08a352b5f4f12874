"""Structured logs: one JSON object per line on stderr.

The server logs what happened to a request (its id, tenant, route, status, time),
never what was in it: no memory text, no queries, no API keys."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

ACCESS = "engramdb.server.access"
SERVER = "engramdb.server"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)  # code and frames, no local values
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send the server's logs (and uvicorn's) to `stream` as JSON lines. Called by the CLI."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]  # before the MCP SDK's basicConfig, which then leaves it be
    root.setLevel(logging.WARNING)
    for name in (SERVER, "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def log_request(fields: dict[str, Any]) -> None:
    logging.getLogger(ACCESS).info("request", extra={"fields": fields})
