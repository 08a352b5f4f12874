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
    def __init__(self, name: str, jobs: int, log: list[str], done: threading.Event,
                 gate: threading.Event | None = None) -> None:
        self.name, self.left, self.log, self.done, self.gate = name, jobs, log, done, gate

    def claim(self) -> Job | None:
        if self.gate is not None:
            assert self.gate.wait(10)  # every lane is in before the first job is taken
        if self.left == 0:
            return None
        self.left -= 1
        return Job(self.left, Scope("u"), [], 1)

    def run(self, job: Job) -> None:
        self.log.append(self.name)
        if len(self.log) == 7:
            self.done.set()


def test_lanes_are_taken_in_turn():
    runner, log, done, gate = Runner(), [], threading.Event(), threading.Event()
    busy, quiet = ListLane("busy", 5, log, done, gate), ListLane("quiet", 2, log, done, gate)
    runner.add(busy)
    runner.add(quiet)
    gate.set()
    assert done.wait(10)
    assert sorted(log) == ["busy"] * 5 + ["quiet"] * 2
    # Not behind the busy lane's backlog: one job a lane a round (the first round may have
    # begun before the quiet lane joined), so its two jobs are done within the first five.
    assert log[:5].count("quiet") == 2 and log[-1] == "busy"
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
        assert process_runner().lanes() == 10  # each Memory: its distiller and its notes lane
        assert len(extractor_children()) - len(before) == 1  # one spaCy child, not one per Memory
        assert shared_extractors().users(mems[0]._extractor_key()) == 5
    finally:
        for mem in mems:
            mem.close()
    assert process_runner().lanes() == 0
    assert extractor_children() == before  # the last user let go: the child is gone


class AgedLane:
    """Jobs queued at the given ages (seconds ago); records what the runner asked of it."""

    def __init__(self, ages: list[float], done: threading.Event) -> None:
        from engramdb.clock import format_ts
        from datetime import datetime, timedelta, timezone

        now = datetime.now(timezone.utc)
        self.jobs = [Job(i, Scope("u"), [], 1, "distill", format_ts(now - timedelta(seconds=age)))
                     for i, age in enumerate(ages)]
        self.boosts: list[bool] = []
        self.done = done

    def claim(self) -> Job | None:
        return self.jobs.pop(0) if self.jobs else None

    def run(self, job: Job) -> None:
        if not self.jobs:
            self.done.set()

    def boost(self, on: bool) -> None:
        self.boosts.append(on)


def test_an_old_backlog_runs_at_normal_priority_until_it_is_young_again():
    runner, done = Runner(), threading.Event()
    lane = AgedLane([1, 120, 60, 20, 5, 1], done)
    runner.add(lane)
    assert done.wait(10)
    runner.remove(lane, 1)
    # young: idle; 120 s old: normal; still over a third of the threshold: normal; 5 s: idle again
    assert lane.boosts == [False, True, True, True, False, False]
    assert runner.boosted is False
