"""A process stops within 5 s whatever its jobs are doing: a job in flight is released to
the queue (its attempt not counted), never waited for (issue 10: a server took 173 s)."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from engramdb import Config, Memory
from engramdb.errors import ProviderError
from engramdb.extract.base import ExtractionResult
from engramdb.extract.isolated import IsolatedExtractor
from engramdb.providers.fake import FakeEmbedder


def test_closing_the_isolated_extractor_does_not_wait_for_an_extraction_in_flight():
    extractor = IsolatedExtractor("fake")
    extractor.command = [sys.executable, "-c", "import time; time.sleep(120)"]  # a child that never answers
    failed: list[BaseException] = []

    def run() -> None:
        try:
            extractor.extract([])
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            failed.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.5)
    start = time.monotonic()
    extractor.close()
    worker.join(5)
    assert time.monotonic() - start < 3
    assert not worker.is_alive() and isinstance(failed[0], ProviderError)


class Stuck:
    """An extractor whose extraction blocks until it is closed (a slow LLM, a starved child)."""

    name = "stuck"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.closed = threading.Event()

    def extract(self, turns):
        self.started.set()
        self.closed.wait(120)
        raise ProviderError("the extraction process exited")

    def close(self) -> None:
        self.closed.set()


def test_stopping_releases_the_running_job_to_the_queue(db_path, monkeypatch):
    import engramdb.memory

    stuck = Stuck()
    monkeypatch.setattr(engramdb.memory, "make_extractor", lambda name, **kw: stuck)
    mem = Memory(db_path, embedder=FakeEmbedder(), config=Config(extractor="llm:stuck"))
    mem.add("I live in Paris", user_id="ann")
    assert stuck.started.wait(30)
    assert mem.jobs()["running"] == 1
    start = time.monotonic()
    mem.close()
    assert time.monotonic() - start < 5
    with Memory(db_path, embedder=FakeEmbedder(), config=Config(extractor="none")) as again:
        jobs = again.jobs()
        assert (jobs["pending"], jobs["running"], jobs["failed"]) == (1, 0, 0)
        job = again.store.claim_job(now="2999-01-01T00:00:00.000000Z", lease_until="2999-01-01T01:00:00.000000Z")
        assert job is not None and job.attempts == 1  # the interrupted attempt was not counted


@pytest.mark.distill
def test_a_server_stops_within_5_s_of_sigterm_while_distilling(tmp_path):
    """The issue's measurement as a test: `engram serve`, a big add whose distillation is
    still running (offline extractor, at idle priority), then SIGTERM: out in under 5 s,
    the job back in the queue, nothing lost."""
    import os
    import signal

    import httpx

    from engramdb.bench.load import ServerProcess, create_key

    pytest.importorskip("fastapi")
    env = {**os.environ, "ENGRAM_EMBEDDER": "fake", "ENGRAM_EXTRACTOR": "offline"}
    store, keys = str(tmp_path / "engram.db"), tmp_path / "keys.db"
    secret = create_key(store, keys, env=env)
    server = ServerProcess(store, keys, tmp_path / "server.log", env=env).start()
    try:
        turns = [{"role": "user", "content": f"On day {i} I moved to city number {i} and adopted a dog called Rex{i}."}
                 for i in range(3000)]
        reply = httpx.post(f"{server.url}/v1/memories", json={"user_id": "ann", "messages": turns},
                           headers={"Authorization": f"Bearer {secret}"}, timeout=120)
        assert reply.status_code == 201, reply.text[:300]
        deadline = time.monotonic() + 30
        with _tenant_db(tmp_path) as db:
            while db.execute("SELECT count(*) FROM jobs WHERE state = 'running'").fetchone()[0] == 0:
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(30)
        assert time.monotonic() - start < 5
    finally:
        server.kill()
    with _tenant_db(tmp_path) as db:
        assert db.execute("SELECT count(*) FROM records WHERE kind = 'turn'").fetchone()[0] == 3000
        assert db.execute("SELECT state, attempts FROM jobs").fetchall() == [("pending", 0)]


def _tenant_db(tmp_path):
    """The store the server's key writes to (its tenant's file beside the store)."""
    import sqlite3

    files = [p for p in tmp_path.rglob("*.db") if p.name != "keys.db"]
    with_jobs = []
    for path in files:
        conn = sqlite3.connect(path)
        try:
            if conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]:
                if conn.execute("SELECT count(*) FROM records").fetchone()[0]:
                    with_jobs.append(path)
        finally:
            conn.close()
    assert len(with_jobs) == 1, files
    return sqlite3.connect(with_jobs[0])
