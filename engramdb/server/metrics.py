"""What the server tells an operator: the distillation backlog of its open tenants (for
/readyz and /metrics), request counts and latencies by route and status, and each open
tenant's store size, in Prometheus' text format (no dependency).

No tenant name, user id or stored text appears in them: the queue figures are summed
over tenants, and a store's size is labelled by the tenant's slug (`t_` and a hash of
its name, `stores.tenant_slug`: the name its store file already has). The backlog is
read from the tenants' stores at most once per `ttl_s`, so that a flood of
(unauthenticated) /readyz calls costs one sweep a second."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..stores import tenant_slug
from .tenants import TenantRegistry

log = logging.getLogger("engramdb.server")
BACKLOG_TTL_S = 1.0
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"})
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SIZES_TTL_S = 10.0  # store sizes are counted at most this often (a count over each open store)
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # latency histogram bounds


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


@dataclass
class Latency:
    """Request durations by (method, route): a Prometheus histogram's buckets, sum and count."""

    buckets: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # per bound of BUCKETS_S, then +Inf
    sums: Counter = field(default_factory=Counter)

    def observe(self, key: tuple[str, str], seconds: float) -> None:
        counts = self.buckets.setdefault(key, [0] * (len(BUCKETS_S) + 1))
        counts[next((i for i, bound in enumerate(BUCKETS_S) if seconds <= bound), len(BUCKETS_S))] += 1
        self.sums[key] += seconds

    def copy(self) -> "Latency":
        return Latency({k: list(v) for k, v in self.buckets.items()}, Counter(self.sums))


@dataclass(frozen=True)
class StoreSize:
    tenant: str  # the tenant's slug (never its name): "local" for the untenanted store
    records: int
    bytes: int | None  # the SQLite file and its WAL, or the PostgreSQL schema's tables


class StoreSizes:
    """The size of each open tenant's store, read at most once per `ttl_s`."""

    def __init__(self, registry: TenantRegistry, *, ttl_s: float = SIZES_TTL_S) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._last: tuple[float, list[StoreSize]] | None = None

    def read(self) -> list[StoreSize]:
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.ttl_s:
                return self._last[1]
            found = []
            for tenant in self.registry.open_tenants():
                try:
                    stats = self.registry.memory(tenant).stats()
                except Exception as exc:  # one tenant's broken store leaves the others' figures
                    log.warning("reading a tenant's store size failed", extra={"fields": {
                        "tenant": tenant, "error": type(exc).__name__}})
                    continue
                size = stats.get("file_bytes", stats.get("table_bytes"))
                found.append(StoreSize("local" if tenant is None else tenant_slug(tenant), int(stats["records"]),
                                       None if size is None else int(size)))
            self._last = (time.monotonic(), found)
            return found


class RequestCounter:
    """ASGI middleware: HTTP requests answered, by method, route template and status.
    Labels are bounded: a route is its template (`/v1/memories/{memory_id}`), never the
    path asked for; a path no route serves is `unmatched`; an odd method is `other`."""

    def __init__(self, app: ASGIApp, *, counts: Counter, latency: Latency | None = None) -> None:
        self.app = app
        self.counts = counts
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        start = time.perf_counter()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope.get("method", "")
            route = getattr(scope.get("route"), "path", None)
            shown = method if method in METHODS else "other"
            self.counts[(shown, route or "unmatched", status["code"])] += 1
            if self.latency is not None:
                self.latency.observe((shown, route or "unmatched"), time.perf_counter() - start)


def render(backlog: Backlog, requests: Counter, *, max_backlog_age_s: float | None,
           latency: Latency | None = None, sizes: list[StoreSize] | None = None) -> str:
    """The Prometheus text exposition (format 0.0.4) of the backlog, the counts, the
    latencies and the store sizes."""
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
    if latency is not None:
        samples: list[tuple[str, float]] = []
        for (m, r), counts in sorted(latency.buckets.items()):
            where = f'method="{m}",route="{_label(r)}"'
            total = 0
            for bound, count in zip((*BUCKETS_S, math.inf), counts):
                total += count
                samples.append((f'_bucket{{{where},le="{_number(bound)}"}}', total))
            samples.append((f"_sum{{{where}}}", latency.sums[(m, r)]))
            samples.append((f"_count{{{where}}}", total))
        lines.extend(["# HELP engram_http_request_duration_seconds Time to answer an HTTP request, by method and "
                      "route.", "# TYPE engram_http_request_duration_seconds histogram"])
        lines.extend(f"engram_http_request_duration_seconds{labels} {_number(value)}" for labels, value in samples)
    if sizes is not None:
        metric("engram_store_records", "gauge", "Memories in each open tenant's store (tenant: its slug).",
               [(f'{{tenant="{_label(x.tenant)}"}}', x.records) for x in sizes])
        metric("engram_store_bytes", "gauge", "Bytes of each open tenant's store on disk (tenant: its slug).",
               [(f'{{tenant="{_label(x.tenant)}"}}', x.bytes) for x in sizes if x.bytes is not None])
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value) if isinstance(value, float) else str(int(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
