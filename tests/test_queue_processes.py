"""Several processes on one PostgreSQL share the job queue (issue 10): no job's effects
are written twice, and none is lost when one of the processes is killed mid-job (its
lease runs out and another takes the job)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


from engramdb.ids import new_id
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores import NewRecord
from engramdb.stores.postgres import PostgresStore
from engramdb.types import Scope

TURNS = 30
WORKER = textwrap.dedent('''
    import sys, time
    import engramdb.memory
    from engramdb import Config, Memory
    from engramdb.extract.fake import FakeExtractor
    from engramdb.providers.fake import FakeEmbedder

    class Slow(FakeExtractor):
        def extract(self, turns):
            time.sleep(0.15)  # long enough to be killed in the middle of a job
            return super().extract(turns)

    engramdb.memory.make_extractor = lambda name, **kw: Slow()
    url, seconds = sys.argv[1], float(sys.argv[2])
    with Memory(url, embedder=FakeEmbedder(), config=Config(extractor="llm:slow", job_lease_s=2.0)) as mem:
        mem.flush(seconds)
        print("done", flush=True)
''')


def test_two_processes_share_the_queue_and_a_killed_one_loses_nothing(pg_url, tmp_path: Path):
    store = PostgresStore(pg_url)
    try:
        store.set_embedder_name(FakeEmbedder().name, FakeEmbedder().dim)
        vectors = FakeEmbedder().embed([f"turn {i}" for i in range(TURNS)])
        for i in range(TURNS):  # one job a turn, as TURNS separate adds would queue them
            rid = new_id()
            store.insert([NewRecord(id=rid, scope=Scope("ann"), kind="turn", text=f"I like thing number {i}",
                                    created_at=f"2024-01-01T00:00:{i:02d}.000000Z",
                                    recorded_at="2024-01-01T00:00:00.000000Z", role="user", sources=[rid])],
                         vectors[i:i + 1], actor=None, enqueue=True)
        assert store.job_stats()["pending"] == TURNS
    finally:
        store.close()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    doomed = subprocess.Popen([sys.executable, str(script), pg_url, "60"], env=env, stdout=subprocess.PIPE)
    survivor = subprocess.Popen([sys.executable, str(script), pg_url, "90"], env=env, stdout=subprocess.PIPE)
    store = PostgresStore(pg_url)
    try:
        deadline = time.monotonic() + 60
        while store.job_stats()["pending"] > TURNS - 4 and time.monotonic() < deadline:
            time.sleep(0.05)  # both are working
        assert store.job_stats()["running"] >= 1
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        out, _ = survivor.communicate(timeout=120)
        assert survivor.returncode == 0 and b"done" in out
        stats = store.job_stats()
        assert (stats["pending"], stats["running"], stats["failed"]) == (0, 0, 0)
        turns = store.list(Scope("ann"), [], 1000, 0)
        facts = [r for r in turns if r.kind == "fact"]
        said = sorted(f.text for f in facts)
        assert len(said) == TURNS and len(set(said)) == TURNS  # every turn's fact, once
        by_turn = {r.id: r for r in turns if r.kind == "turn"}
        assert sorted(s for f in facts for s in f.sources) == sorted(s for t in by_turn.values() for s in t.sources)
    finally:
        store.close()
        for process in (doomed, survivor):
            if process.poll() is None:
                process.kill()
                process.wait()

