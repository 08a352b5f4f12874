"""The distillation lag, made visible: `Memory.jobs()` dates the backlog by the Memory's
clock; the server's /readyz reports it over the open tenants (failing only past
`max_backlog_age_s`), /metrics shows it with request counts in Prometheus' format; and
`engram bench load` reports jobs done and the backlog left. Real SQLite files, a real
uvicorn server on 127.0.0.1, a held extractor standing in for a slow or dead LLM."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from click.testing import CliRunner
from server_helpers import LiveServer

import engramdb.memory
from engramdb import Config, Memory
from engramdb.errors import ConfigError, ProviderError
from engramdb.extract.base import Candidate, ExtractionResult
from engramdb.providers.fake import FakeEmbedder

HELD = Config(extractor="fake")  # the tests swap the registry's extractor for a Gate


class Gate:
    """An extractor that fails while `down` is set (a dead LLM), else holds each job until
    `release` is set, then distils one fact per turn."""

    name = "gate"

    def __init__(self) -> None:
        self.down = threading.Event()
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls = 0

    def extract(self, turns):
        self.calls += 1
        self.entered.set()
        if self.down.is_set():
            raise ProviderError("chat server unreachable: connection refused")
        assert self.release.wait(30)
        return ExtractionResult(candidates=[
            Candidate(kind="fact", text=f"The user said: {t.text}", subject="user", sources=(t.id,),
                      said_at=t.timestamp) for t in turns])


class ManualClock:
    def __init__(self) -> None:
        self.at = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def gate(monkeypatch):
    found = Gate()
    monkeypatch.setattr(engramdb.memory, "make_extractor", lambda *args, **kwargs: found)
    yield found
    found.release.set()  # never leave the runner held


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- Memory.jobs() -----------------------------------------------------------------------


def test_jobs_dates_the_backlog_by_the_memorys_clock(db_path, gate):
    clock = ManualClock()
    with Memory(db_path, embedder=FakeEmbedder(), config=HELD, clock=clock) as mem:
        assert mem.jobs() == {"pending": 0, "running": 0, "failed": 0, "ready": 0, "oldest": None,
                              "recent_errors": [], "backlog_age_s": None, "distilled": 0, "runs": []}
        mem.add("the blue notebook is in the attic", user_id="alice")
        assert gate.entered.wait(30)
        jobs = mem.jobs()
        assert (jobs["running"], jobs["ready"], jobs["backlog_age_s"], jobs["distilled"]) == (1, 1, 0.0, 0)
        clock.at += timedelta(seconds=90.5)
        assert mem.jobs()["backlog_age_s"] == 90.5
        assert mem.jobs(user_id="alice")["backlog_age_s"] == 90.5
        assert mem.jobs(user_id="bob")["backlog_age_s"] is None  # bob has nothing waiting
        assert "distilled" not in mem.jobs(user_id="alice")  # a store-wide figure: whole-store calls only
        gate.release.set()
        assert mem.flush(30)
        wait_for(lambda: mem.jobs()["distilled"] == 1)  # counted just after the job's last write
        jobs = mem.jobs()
        assert (jobs["pending"], jobs["running"], jobs["backlog_age_s"]) == (0, 0, None)


def test_a_job_waiting_out_a_backoff_is_backlog_but_not_ready(db_path, gate):
    clock = ManualClock()
    gate.down.set()
    with Memory(db_path, embedder=FakeEmbedder(), config=HELD, clock=clock) as mem:
        mem.add("my locker code is 2231", user_id="alice")
        assert mem.flush(10)  # the attempt failed; the job waits out its backoff
        clock.at += timedelta(seconds=1)
        jobs = mem.jobs()
        assert (jobs["pending"], jobs["ready"], jobs["backlog_age_s"], jobs["distilled"]) == (1, 0, 1.0, 0)
    clock.at += timedelta(minutes=1)  # past the backoff: due again (read where nothing distils it)
    with Memory(db_path, embedder=FakeEmbedder(), config=Config(extractor="none"), clock=clock) as mem:
        jobs = mem.jobs()
        assert (jobs["pending"], jobs["ready"], jobs["backlog_age_s"]) == (1, 1, 61.0)


def test_a_failed_job_does_not_age_the_backlog(db_path, gate):
    from engramdb import distill

    clock = ManualClock()
    gate.down.set()
    with Memory(db_path, embedder=FakeEmbedder(), config=HELD, clock=clock) as mem:
        mem.add("a turn the LLM never reads", user_id="alice")
        for _ in range(distill.MAX_ATTEMPTS + 1):
            assert mem.flush(10)
            clock.at += timedelta(hours=1)
        assert mem.jobs()["failed"] == 1 and mem.jobs()["backlog_age_s"] is None  # parked: nothing waits
        clock.at += timedelta(days=1)
        gate.down.clear()
        gate.entered.clear()
        mem.add("a turn queued now", user_id="alice")
        assert gate.entered.wait(30)
        age = mem.jobs()["backlog_age_s"]
        assert age is None or age < 60  # never the parked job's day and more


def test_jobs_of_a_read_only_memory_and_of_async_memory(db_path, gate):
    from engramdb import AsyncMemory
    import asyncio

    clock = ManualClock()
    gate.down.set()
    with Memory(db_path, embedder=FakeEmbedder(), config=HELD, clock=clock) as mem:
        mem.add("queued and failing", user_id="alice")
        assert mem.flush(10)
    clock.at += timedelta(seconds=30)
    with Memory(db_path, embedder=FakeEmbedder(), config=HELD, clock=clock, read_only=True) as reader:
        jobs = reader.jobs()
        assert (jobs["pending"], jobs["backlog_age_s"], jobs["distilled"]) == (1, 30.0, 0)

    async def read():
        async with AsyncMemory(db_path, embedder=FakeEmbedder(), config=Config(extractor="none"),
                               clock=clock) as amem:
            return await amem.jobs(user_id="alice")

    assert asyncio.run(read())["backlog_age_s"] == 30.0


# -- the config field -------------------------------------------------------------------


def test_max_backlog_age_s_from_the_environment_and_refused_when_not_positive():
    assert Config().max_backlog_age_s is None
    assert Config.load(environ={"ENGRAM_MAX_BACKLOG_AGE_S": "600"}).max_backlog_age_s == 600.0
    assert Config.load(environ={"ENGRAM_MAX_BACKLOG_AGE_S": ""}).max_backlog_age_s is None
    for bad in ("soon", "0", "-5", "nan"):
        with pytest.raises(ConfigError, match="max_backlog_age_s"):
            Config.load(environ={"ENGRAM_MAX_BACKLOG_AGE_S": bad})
    with pytest.raises(ConfigError, match="max_backlog_age_s"):
        Config(max_backlog_age_s=True)


# -- the server --------------------------------------------------------------------------


class Server:
    def __init__(self, tmp_path, *, auth: bool = True, **config) -> None:
        from engramdb.server.auth import Authenticator
        from engramdb.server.keys.sqlite import SQLiteKeyStore, keys_path
        from engramdb.server.rest import create_app
        from engramdb.server.tenants import TenantRegistry

        store = tmp_path / "engram.db"
        self.clock = ManualClock()
        self.keys = SQLiteKeyStore(keys_path(store)) if auth else None
        self.registry = TenantRegistry(store, HELD.replace(**config), embedder=FakeEmbedder(), clock=self.clock)
        self.app = create_app(self.registry, Authenticator(self.keys), mcp=False)
        self.app.state.backlog.ttl_s = 0.0  # read the queue afresh on every probe
        self.live = LiveServer(self.app).start()
        self.secrets = {"acme": self.keys.create("acme").secret,
                        "globex": self.keys.create("globex", read_only=True).secret} if auth else {}
        self.clients: list[httpx.Client] = []

    def client(self, who: str | None = "acme") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.secrets[who]}"} if who else {}
        client = httpx.Client(base_url=self.live.url, headers=headers, timeout=30)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.live.stop()


@pytest.fixture
def make_server(tmp_path):
    made: list[Server] = []

    def make(**options) -> Server:
        made.append(Server(tmp_path, **options))
        return made[-1]

    yield make
    for server in made:
        server.stop()


def add(client, text: str, user: str = "alice") -> None:
    response = client.post("/v1/memories", json={"messages": [text], "user_id": user})
    assert response.status_code == 201, response.text


def test_readyz_reports_the_backlog_and_fails_only_past_the_threshold(make_server, gate):
    server = make_server(max_backlog_age_s=60)
    probe, acme = server.client(None), server.client("acme")
    ready = probe.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["jobs"] == {"tenants": 0, "pending": 0, "running": 0, "failed": 0, "ready": 0,
                                    "backlog_age_s": None, "distilled": 0, "unreadable": 0,
                                    "max_backlog_age_s": 60.0}
    add(acme, "I keep my passport in the red folder")
    assert gate.entered.wait(30)
    server.clock.at += timedelta(seconds=59)
    jobs = probe.get("/readyz").json()["jobs"]
    assert (jobs["tenants"], jobs["running"], jobs["backlog_age_s"]) == (1, 1, 59.0)

    server.clock.at += timedelta(seconds=2)  # 61 s: past the threshold
    behind = probe.get("/readyz")
    assert behind.status_code == 503, behind.text
    error = behind.json()["error"]
    assert error["type"] == "EngramError" and "distillation is behind" in error["message"]
    assert "61 s" in error["message"] and "max_backlog_age_s (60 s)" in error["message"]

    gate.release.set()
    assert server.registry.memory("acme").flush(30)
    wait_for(lambda: server.registry.memory("acme").jobs()["distilled"] == 1)
    caught_up = probe.get("/readyz")
    assert caught_up.status_code == 200
    assert caught_up.json()["jobs"]["backlog_age_s"] is None and caught_up.json()["jobs"]["distilled"] == 1


def test_readyz_never_fails_for_the_backlog_by_default(make_server, gate):
    server = make_server()
    acme = server.client("acme")
    add(acme, "first", user="alice")
    assert gate.entered.wait(30)
    add(acme, "second", user="bob")  # waits behind the held job
    server.clock.at += timedelta(days=1)
    ready = server.client(None).get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    jobs = ready.json()["jobs"]
    assert (jobs["pending"], jobs["running"], jobs["backlog_age_s"], jobs["max_backlog_age_s"]) == (1, 1, 86400.0,
                                                                                                    None)


def test_readyz_sums_the_open_tenants_and_survives_a_broken_one(make_server, gate):
    gate.down.set()  # every attempt fails: the jobs wait out their backoff, pending
    server = make_server()
    add(server.client("acme"), "acme's turn")
    server.client("globex").get("/v1/stats")  # opens globex's store (a read-only key: nothing queued)
    acme = server.registry.memory("acme")
    wait_for(lambda: acme.jobs()["ready"] == 0 and acme.jobs()["recent_errors"])  # the first attempt failed
    server.clock.at += timedelta(seconds=1)  # within the 2 s backoff
    jobs = server.client(None).get("/readyz").json()["jobs"]
    assert (jobs["tenants"], jobs["pending"], jobs["ready"], jobs["backlog_age_s"]) == (2, 1, 0, 1.0)

    server.registry.memory("globex").store.close()  # a tenant whose store fails to answer
    ready = server.client(None).get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["jobs"]["unreadable"] == 1 and ready.json()["jobs"]["pending"] == 1


def test_jobs_route_shows_the_backlog_age(make_server, gate):
    server = make_server()
    acme = server.client("acme")
    add(acme, "a turn to distil")
    assert gate.entered.wait(30)
    server.clock.at += timedelta(seconds=12)
    whole = acme.get("/v1/jobs").json()
    assert (whole["running"], whole["ready"], whole["backlog_age_s"], whole["distilled"]) == (1, 1, 12.0, 0)
    assert whole["oldest"] == "2024-01-01T00:00:00.000000Z"
    one = acme.get("/v1/jobs", params={"user_id": "alice"}).json()
    assert one["backlog_age_s"] == 12.0 and one["distilled"] is None


def metric_values(text: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample of a Prometheus text exposition."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_needs_a_key_and_shows_the_backlog_and_request_counts(make_server, gate):
    server = make_server(max_backlog_age_s=600)
    acme = server.client("acme")
    assert server.client(None).get("/metrics").status_code == 401
    assert httpx.get(server.live.url + "/metrics", headers={"Authorization": "Bearer egk_nope"}).status_code == 401
    add(acme, "a turn to distil")
    assert gate.entered.wait(30)
    add(acme, "a second one, waiting")
    assert acme.get("/v1/memories/no-such-id").status_code == 404
    assert acme.get("/no/such/path/abc123").status_code == 404
    assert acme.request("BREW", "/v1/memories").status_code == 405
    server.clock.at += timedelta(seconds=42)

    response = server.client("globex").get("/metrics")  # any key will do: the figures name no tenant
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for name in ("engram_jobs", "engram_jobs_backlog_age_seconds", "engram_jobs_distilled_total",
                 "engram_http_requests_total"):
        assert f"# TYPE {name} " in text
    values = metric_values(text)
    assert values['engram_jobs{state="pending"}'] == 1 and values['engram_jobs{state="running"}'] == 1
    assert values["engram_jobs_backlog_age_seconds"] == 42.0
    assert values["engram_jobs_backlog_age_limit_seconds"] == 600.0
    assert values["engram_tenants_open"] == 1 and values["engram_jobs_distilled_total"] == 0
    assert values['engram_http_requests_total{method="POST",route="/v1/memories",status="201"}'] == 2
    assert values['engram_http_requests_total{method="GET",route="/v1/memories/{memory_id}",status="404"}'] == 1
    assert values['engram_http_requests_total{method="GET",route="unmatched",status="404"}'] == 1
    assert values['engram_http_requests_total{method="other",route="/v1/memories",status="405"}'] == 1
    assert values['engram_http_requests_total{method="GET",route="/metrics",status="401"}'] == 2
    assert "abc123" not in text and "no-such-id" not in text and "acme" not in text and "alice" not in text

    gate.release.set()
    assert server.registry.memory("acme").flush(30)
    wait_for(lambda: server.registry.memory("acme").jobs()["distilled"] == 2)
    values = metric_values(acme.get("/metrics").text)
    assert values["engram_jobs_distilled_total"] == 2 and values["engram_jobs_backlog_age_seconds"] == 0
    assert values['engram_http_requests_total{method="GET",route="/metrics",status="200"}'] == 1


def test_metrics_without_auth_and_an_oversized_body_counted(make_server):
    server = make_server(auth=False, extractor="none", max_request_bytes=1_000)
    client = server.client(None)
    big = client.post("/v1/memories", json={"messages": ["x" * 5_000]})
    assert big.status_code == 413
    values = metric_values(client.get("/metrics").text)
    assert values["engram_tenants_open"] == 0
    assert any(k.startswith('engram_http_requests_total{method="POST"') and k.endswith('status="413"}')
               for k in values)
    assert "engram_jobs_backlog_age_limit_seconds" not in values


def test_the_backlog_probe_reads_the_stores_at_most_once_per_ttl(tmp_path):
    from engramdb.server.metrics import BacklogProbe
    from engramdb.server.tenants import TenantRegistry

    registry = TenantRegistry(tmp_path / "engram.db", Config(extractor="none"), embedder=FakeEmbedder())
    try:
        probe = BacklogProbe(registry, ttl_s=60)
        first = probe.read()
        registry.memory("acme")
        assert probe.read() is first and first.tenants == 0  # within the ttl: the same reading
        probe.ttl_s = 0
        assert probe.read().tenants == 1
    finally:
        registry.close()


def test_the_readyz_route_and_metrics_are_in_the_openapi_document():
    from engramdb.server.rest import openapi_schema

    paths = openapi_schema()["paths"]
    assert "/metrics" in paths and "text/plain; version=0.0.4; charset=utf-8" in json.dumps(paths["/metrics"])
    schema = json.dumps(openapi_schema()["components"]["schemas"]["Backlog"])
    assert "backlog_age_s" in schema and "max_backlog_age_s" in schema


# -- engram bench load -------------------------------------------------------------------


def test_bench_load_reports_the_jobs_done_and_the_backlog_left(tmp_path):
    pytest.importorskip("fastapi")
    from engramdb.bench.cli import bench

    result = CliRunner().invoke(bench, [
        "load", "--backend", "sqlite", "--clients", "3", "--seconds", "1.5", "--warmup", "0.5",
        "--embedder", "fake", "--extractor", "fake", "--dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    jobs = report["distillation"]
    assert jobs["jobs_queued"] == report["acknowledged_adds"] > 0
    assert jobs["at_start"] == {"pending": 0, "running": 0, "failed": 0, "ready": 0, "backlog_age_s": None}
    end = jobs["at_end"]
    assert jobs["jobs_done"] >= 0 and end["failed"] == 0
    waiting = end["pending"] + end["running"]
    # every queued job is done or still waiting, within the one batch the runner may commit
    # between the queue's read and the done counter's (BATCH_JOBS jobs claimed together)
    from engramdb.distill import BATCH_JOBS
    assert abs(jobs["jobs_done"] + waiting - jobs["jobs_queued"]) <= BATCH_JOBS, jobs
    assert (end["backlog_age_s"] is None) == (waiting == 0)
    assert isinstance(jobs["samples"], list) and jobs["jobs_done_per_s"] >= 0
