"""Faults under load, with real processes: `engram serve` killed with SIGKILL in the
middle of a stream of adds, and its PostgreSQL stopped and started under it.

The server is a child process (`python -m engramdb.cli serve`) with the fake embedder and
no distillation; the clients are the load benchmark's (engramdb/bench/load.py): threads,
each with its own HTTP connection."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from engramdb.bench.load import USER, EmbeddedPostgres, Op, ServerProcess, create_key, drive, verify  # noqa: E402

CLIENT_TIMEOUT = 10.0
OUTAGE_S = 8.0


def _env() -> dict[str, str]:
    return {**os.environ, "ENGRAM_EMBEDDER": "fake", "ENGRAM_EXTRACTOR": "none"}


def _in_background(url: str, secret: str, *, clients: int, search_share: float, seconds: float = 60.0):
    """Start `drive` in a thread; returns (thread, stop event, ops so far)."""
    ops: list[Op] = []
    stop = threading.Event()
    stop.t0 = time.monotonic()  # about when the drive begins: Op.started counts from here
    thread = threading.Thread(target=lambda: ops.extend(drive(
        url, secret, clients=clients, seconds=seconds, search_share=search_share, timeout=CLIENT_TIMEOUT,
        stop=stop)), daemon=True)
    thread.start()
    return thread, stop, ops


def _acknowledged_ids(ops: list[Op]) -> list[str]:
    return [i for op in ops if op.kind == "add" and op.ok for i in op.ids]


def _wait_for_adds(url: str, secret: str, at_least: int, timeout: float = 20.0) -> None:
    """Until the user holds `at_least` records (the stream is well under way)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=5) as http:
        while time.monotonic() < deadline:
            stats = http.get("/v1/stats", params={"user_id": USER})
            if stats.status_code == 200 and stats.json()["records"] >= at_least:
                return
            time.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} records after {timeout} s")


@pytest.fixture
def workdir():
    """Not under pytest's basetemp: the PostgreSQL server runs as its own user when the
    tests run as root (see conftest.postgres_url)."""
    path = Path(tempfile.mkdtemp(prefix="engram-faults-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def own_postgres(workdir: Path):
    """A PostgreSQL of this test's own, so that stopping it disturbs no other test."""
    pg = EmbeddedPostgres(workdir / "pgdata")
    yield pg
    pg.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_server_killed_mid_stream_keeps_every_acknowledged_add(backend, workdir, request):
    if backend == "sqlite":
        store = str(workdir / "engram.db")
    else:
        store = request.getfixturevalue("pg_url")
    keys = workdir / "keys.db"
    secret = create_key(store, keys, env=_env())
    server = ServerProcess(store, keys, workdir / "server.log", env=_env()).start()
    try:
        thread, stop, ops = _in_background(server.url, secret, clients=6, search_share=0.2)
        _wait_for_adds(server.url, secret, at_least=200)
        server.kill()  # SIGKILL while the six clients are sending
        killed_at = time.monotonic()
        time.sleep(0.5)
        stop.set()
        thread.join(CLIENT_TIMEOUT + 5)
        assert not thread.is_alive()
    finally:
        server.kill()
    acknowledged = _acknowledged_ids(ops)
    assert len(acknowledged) >= 200
    failed = [op for op in ops if not op.ok]
    assert failed, "no request was cut off by the kill"
    assert all(isinstance(op.status, str) for op in failed), {op.status for op in failed}  # connection errors only

    restarted = ServerProcess(store, keys, workdir / "server.log", env=_env()).start()
    try:
        checked = verify(restarted.url, secret, acknowledged)
        assert checked == {"checked": len(acknowledged), "found": len(acknowledged), "missing": 0,
                           "read_errors": {}}
        with httpx.Client(base_url=restarted.url, headers={"Authorization": f"Bearer {secret}"},
                          timeout=CLIENT_TIMEOUT) as http:
            added = http.post("/v1/memories", json={"messages": "after the crash", "user_id": USER})
            assert added.status_code == 201
            hits = http.post("/v1/memories/search", json={"query": "after the crash", "user_id": USER})
            assert hits.status_code == 200 and hits.json()["hits"]
    finally:
        restarted.stop()
    assert time.monotonic() - killed_at < 60
    if backend == "sqlite":
        for db in [workdir / "engram.db", *(workdir / "engram.tenants").glob("*.db")]:
            with sqlite3.connect(db) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", db


def test_postgres_restart_under_load_gives_clean_503s_then_recovers(workdir, own_postgres):
    keys = workdir / "keys.db"
    secret = create_key(own_postgres.url, keys, env=_env())
    server = ServerProcess(own_postgres.url, keys, workdir / "server.log", env=_env()).start()
    try:
        thread, stop, ops = _in_background(server.url, secret, clients=6, search_share=0.5)
        _wait_for_adds(server.url, secret, at_least=100)
        began = time.monotonic()
        own_postgres.stop()  # fast shutdown: open transactions abort, connections close
        down_s = time.monotonic() - began
        time.sleep(OUTAGE_S)  # longer than Config.pool_timeout_s: waiting requests must give up with a 503
        own_postgres.start()
        back_s = time.monotonic() - began
        time.sleep(8)  # requests from 3 s after PostgreSQL's return on must succeed: a 5 s window
        stop.set()
        thread.join(CLIENT_TIMEOUT + 5)
        assert not thread.is_alive()

        failed = [op for op in ops if not op.ok]
        assert failed, "no request failed while PostgreSQL was down"
        outcomes = {(op.status, op.error_type) for op in failed}
        assert outcomes == {(503, "StorageError")}, outcomes  # never a 500, a timeout or a dropped connection
        assert max(op.seconds for op in ops) < CLIENT_TIMEOUT
        # once PostgreSQL is back (give the pool a few seconds to reconnect), requests succeed again
        after = [op for op in ops if stop.t0 + op.started > began + back_s + 3]
        assert after and all(op.ok for op in after), {op.status for op in after if not op.ok}
        assert any(op.kind == "search" for op in after) and any(op.kind == "add" for op in after)

        acknowledged = _acknowledged_ids(ops)
        checked = verify(server.url, secret, acknowledged)
        assert checked["missing"] == 0 and checked["read_errors"] == {}, checked
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=10) as http:
            stats = http.get("/v1/stats", params={"user_id": USER}).json()
            # every acknowledged record, and at most the adds whose answer was lost in the outage
            unanswered = sum(2 for op in failed if op.kind == "add")
            assert len(acknowledged) <= stats["records"] <= len(acknowledged) + unanswered
            listed = http.get("/v1/memories", params={"user_id": USER, "limit": 1000}).json()["records"]
            assert len({r["id"] for r in listed}) == len(listed)
    finally:
        server.stop()
    assert down_s < 30
