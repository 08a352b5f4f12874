"""What the server tells an operator: the distillation backlog of its open tenants (for
/readyz and /metrics) and request counts, in Prometheus' text format (no dependency).

Figures are the whole process's, summed over tenants: no tenant name, user id or
stored text appears in them. The backlog is read from the tenants' stores at most once
per `ttl_s`, so that a flood of (unauthenticated) /readyz calls costs one sweep a second."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .tenants import TenantRegistry

log = logging.getLogger("engramdb.server")
BACKLOG_TTL_S = 1.0
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"})
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Backlog:
    """The distillation queue over the tenants open in this process."""

    tenants: int
    pending: int
    running: int
    failed: int
    ready: int
    backlog_age_s: float | None  # the oldest job not yet done: how long it has waited
    distilled: int  # jobs distilled by this process since its tenants opened
    unreadable: int = 0  # open tenants whose queue could not be read

    def to_dict(self) -> dict[str, object]:
        return {"tenants": self.tenants, "pending": self.pending, "running": self.running, "failed": self.failed,
                "ready": self.ready, "backlog_age_s": self.backlog_age_s, "distilled": self.distilled,
                "unreadable": self.unreadable}


def sum_backlog(jobs: list[dict], unreadable: int = 0) -> Backlog:
    """One Backlog from each open tenant's `Memory.jobs()` (for the whole tenant)."""
    ages = [j["backlog_age_s"] for j in jobs if j.get("backlog_age_s") is not None]
    return Backlog(
        tenants=len(jobs) + unreadable, pending=sum(j["pending"] for j in jobs),
        running=sum(j["running"] for j in jobs), failed=sum(j["failed"] for j in jobs),
        ready=sum(j.get("ready", 0) for j in jobs), backlog_age_s=max(ages) if ages else None,
        distilled=sum(j.get("distilled", 0) for j in jobs), unreadable=unreadable,
    )


class BacklogProbe:
    """The registry's backlog, read at most once per `ttl_s`."""

    def __init__(self, registry: TenantRegistry, *, ttl_s: float = BACKLOG_TTL_S) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._last: tuple[float, Backlog] | None = None

    def read(self) -> Backlog:
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.ttl_s:
                return self._last[1]
            jobs, unreadable = [], 0
            for tenant in self.registry.open_tenants():
                try:
                    jobs.append(self.registry.memory(tenant).jobs())
                except Exception as exc:  # one tenant's broken store does not make the server unready
                    unreadable += 1
                    log.warning("reading a tenant's job queue failed", extra={"fields": {
                        "tenant": tenant, "error": type(exc).__name__}})
            found = sum_backlog(jobs, unreadable)
            self._last = (time.monotonic(), found)
            return found


class RequestCounter:
    """ASGI middleware: HTTP requests answered, by method, route template and status.
    Labels are bounded: a route is its template (`/v1/memories/{memory_id}`), never the
    path asked for; a path no route serves is `unmatched`; an odd method is `other`."""

    def __init__(self, app: ASGIApp, *, counts: Counter) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope.get("method", "")
            route = getattr(scope.get("route"), "path", None)
            self.counts[(method if method in METHODS else "other", route or "unmatched", status["code"])] += 1


def render(backlog: Backlog, requests: Counter, *, max_backlog_age_s: float | None) -> str:
    """The Prometheus text exposition (format 0.0.4) of the backlog and the counts."""
    lines: list[str] = []

    def metric(name: str, kind: str, text: str, samples: list[tuple[str, float]]) -> None:
        lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    metric("engram_tenants_open", "gauge", "Tenants whose store this process has open.", [("", backlog.tenants)])
    metric("engram_jobs", "gauge", "Distillation jobs in the open tenants' queues, by state.",
           [(f'{{state="{state}"}}', getattr(backlog, state)) for state in ("pending", "running", "failed")])
    metric("engram_jobs_ready", "gauge", "Jobs running or due now (not waiting out a retry backoff).",
           [("", backlog.ready)])
    metric("engram_jobs_backlog_age_seconds", "gauge",
           "How long the oldest job not yet done (pending or running) has waited; 0 when none waits.",
           [("", backlog.backlog_age_s or 0.0)])
    if max_backlog_age_s is not None:
        metric("engram_jobs_backlog_age_limit_seconds", "gauge",
               "max_backlog_age_s: /readyz fails past this backlog age.", [("", max_backlog_age_s)])
    metric("engram_jobs_unreadable_tenants", "gauge", "Open tenants whose job queue could not be read.",
           [("", backlog.unreadable)])
    metric("engram_jobs_distilled_total", "counter", "Jobs this process has distilled since its tenants opened.",
           [("", backlog.distilled)])
    metric("engram_http_requests_total", "counter", "HTTP requests answered, by method, route and status.",
           [(f'{{method="{m}",route="{_label(r)}",status="{s}"}}', n) for (m, r, s), n in sorted(requests.items())])
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value) if isinstance(value, float) else str(int(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
