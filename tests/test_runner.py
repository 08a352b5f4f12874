"""One background runner per process (lifecycle/runner.py): every Memory of the process,
a server's tenants included, is a lane of one thread, taken in turn; the offline
extractor's child process is shared."""

from __future__ import annotations

import os
import threading

import pytest

from engramdb import Config, Memory
from engramdb.lifecycle.runner import Runner, process_runner, shared_extractors
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores.base import Job
from engramdb.types import Scope


class ListLane:
    def __init__(self, name: str, jobs: int, log: list[str], done: threading.Event) -> None:
        self.name, self.left, self.log, self.done = name, jobs, log, done

    def claim(self) -> Job | None:
        if self.left == 0:
            return None
        self.left -= 1
        return Job(self.left, Scope("u"), [], 1)

    def run(self, job: Job) -> None:
        self.log.append(self.name)
        if len(self.log) == 7:
            self.done.set()


def test_lanes_are_taken_in_turn():
    runner, log, done = Runner(), [], threading.Event()
    busy, quiet = ListLane("busy", 5, log, done), ListLane("quiet", 2, log, done)
    runner.add(busy)
    runner.add(quiet)
    assert done.wait(10)
    assert sorted(log) == ["busy"] * 5 + ["quiet"] * 2
    assert log.index("quiet") <= 1 and log[:4].count("quiet") == 2  # not behind the busy lane's backlog
    assert runner.remove(busy, 1) and runner.remove(quiet, 1) and runner.lanes() == 0


def extractor_children() -> list[int]:
    pids = {int(p) for t in os.listdir("/proc/self/task") for p in open(f"/proc/self/task/{t}/children").read().split()}
    out = []
    for pid in pids:
        try:
            command = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"engramdb.extract.isolated" in command:
            out.append(pid)
    return out


@pytest.mark.distill
def test_many_memories_share_one_runner_and_one_extractor_child(tmp_path):
    before = extractor_children()
    mems = [Memory(tmp_path / f"m{i}.db", embedder=FakeEmbedder(), config=Config(extractor="offline")) for i in range(5)]
    try:
        for i, mem in enumerate(mems):
            mem.add(f"I live in Paris and I work at Airbus number {i}.", user_id="ann")
        for mem in mems:
            assert mem.flush(120)
            assert [r for r in mem.list(user_id="ann") if r.kind == "fact"], "each store got its memories"
        assert process_runner().lanes() == 5
        assert len(extractor_children()) - len(before) == 1  # one spaCy child, not one per Memory
        assert shared_extractors().users(("offline", None, None, Config().llm_timeout_s)) == 5
    finally:
        for mem in mems:
            mem.close()
    assert process_runner().lanes() == 0
    assert extractor_children() == before  # the last user let go: the child is gone
