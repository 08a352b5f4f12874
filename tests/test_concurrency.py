"""Many threads and processes on one SQLite file: every add is kept, no "database is
locked" reaches the caller, and each process's vector mirror follows the others."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engramdb import Memory, Scope
from engramdb.providers.fake import FakeEmbedder
from helpers_writer import integrity

HELPER = Path(__file__).with_name("helpers_writer.py")
ADDS = 50


def run_threads(target, count: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # reported by the test, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a writer thread hung"
    return errors


def add_many(mem: Memory, tag: str, out: dict[str, str]) -> None:
    for i in range(ADDS):
        source = f"{tag}-{i}"
        result = mem.add({"role": "user", "content": f"{tag} says hello number {i}", "id": source}, user_id="u")
        assert len(result.ids) == 1
        out[source] = result.ids[0]


def check_all_present(mem: Memory, expected: dict[str, str]) -> None:
    for source, rid in expected.items():
        record = mem.get(rid, user_id="u")
        assert record.sources == [source]
    assert mem.store.count(Scope("u")) == len(expected)
    listed = {r.id for r in mem.list(user_id="u", limit=1000)}
    assert listed == set(expected.values())


def test_threads_sharing_one_memory(tmp_path):
    db = tmp_path / "shared.db"
    mem = Memory(db, embedder=FakeEmbedder())
    results: list[dict[str, str]] = [{} for _ in range(8)]
    errors = run_threads(lambda i: add_many(mem, f"t{i}", results[i]), 8)
    assert errors == []
    expected = {k: v for part in results for k, v in part.items()}
    assert len(expected) == 8 * ADDS
    check_all_present(mem, expected)
    # Every record can be found by its text, through both retrievers.
    hits = mem.search("t3 says hello number 7", user_id="u", limit=3)
    assert hits[0].id == expected["t3-7"]
    mem.close()
    assert integrity(db) == "ok"


def test_threads_each_with_its_own_memory(tmp_path):
    db = tmp_path / "own.db"
    results: list[dict[str, str]] = [{} for _ in range(4)]

    def work(i: int) -> None:
        mem = Memory(db, embedder=FakeEmbedder())
        try:
            add_many(mem, f"m{i}", results[i])
            # Reads interleaved with the other writers see this thread's own writes.
            assert mem.search(f"m{i} says hello number 3", user_id="u", limit=1)[0].id == results[i][f"m{i}-3"]
        finally:
            mem.close()

    errors = run_threads(work, 4)
    assert errors == []
    expected = {k: v for part in results for k, v in part.items()}
    assert len(expected) == 4 * ADDS
    with Memory(db, embedder=FakeEmbedder()) as mem:
        check_all_present(mem, expected)
    assert integrity(db) == "ok"


def spawn(*args: str, stdin: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HELPER), *args],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_processes_writing_while_another_searches(tmp_path):
    db = tmp_path / "procs.db"
    with Memory(db, embedder=FakeEmbedder()) as mem:  # the embedder is recorded once
        mem.add("a first message", user_id="u")
    searcher = spawn("search", str(db), "u", "4")
    writers = [spawn("add", str(db), "u", str(ADDS), f"p{i}") for i in range(4)]
    outputs = []
    for proc in writers + [searcher]:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "locked" not in err
        outputs.append(out)
    ids = [rid for out in outputs[:4] for line in out.splitlines() for rid in json.loads(line)]
    assert len(ids) == len(set(ids)) == 4 * ADDS
    assert json.loads(outputs[4].splitlines()[-1])["searches"] > 0
    assert integrity(db) == "ok"
    with Memory(db, embedder=FakeEmbedder()) as mem:
        for rid in ids:
            mem.get(rid, user_id="u")
        assert len(mem.list(user_id="u", limit=1000)) == 4 * ADDS + 1
        sources = {r.sources[0] for r in mem.list(user_id="u", limit=1000)}
        assert {f"p{i}-{j}" for i in range(4) for j in range(ADDS)} <= sources


class Reader:
    """A child process holding one Memory (and its vector mirror) across requests."""

    def __init__(self, db: Path, threshold: str | None) -> None:
        self.proc = spawn("reader", str(db), "u", *([threshold] if threshold else []), stdin=True)
        assert self.proc.stdout.readline().strip() == '"ready"', self.proc.stderr.read()

    def vsearch(self, text: str) -> list[str]:
        self.proc.stdin.write(f"vsearch {text}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        _, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err


@pytest.mark.parametrize("threshold", [None, "40"], ids=["exact", "hnsw"])
def test_reader_process_mirror_follows_other_process(tmp_path, threshold):
    db = tmp_path / "mirror.db"
    writer = Memory(db, embedder=FakeEmbedder())
    first = writer.add([f"filler message number {i} about gardens" for i in range(60)], user_id="u").ids
    reader = Reader(db, threshold)
    try:
        before = reader.vsearch("zebra quartz volcano")  # the mirror is built now
        assert set(before) <= set(first)

        # Added by this process after the reader's mirror was built: the reader sees them.
        fresh = writer.add(["zebra quartz volcano", "zebra quartz", "volcano quartz zebra lava"], user_id="u").ids
        after = reader.vsearch("zebra quartz volcano")
        assert after[0] in (fresh[0], fresh[2])  # same words, same fake vector
        assert set(fresh) <= set(after[:3])

        # Deleted by this process: never returned again, even when asking for 50.
        writer.delete(fresh[0], user_id="u")
        for rid in first[:20]:
            writer.delete(rid, user_id="u")
        gone = {fresh[0], *first[:20]}
        again = reader.vsearch("zebra quartz volcano")
        assert not gone & set(again)
        assert set(fresh[1:]) <= set(again[:2])
        filler = reader.vsearch("filler message number about gardens")
        assert not gone & set(filler)
        assert len(filler) == 60 + 3 - len(gone)

        # A whole-user forget (new generation) empties the reader's view too.
        writer.forget(user_id="u")
        assert reader.vsearch("zebra quartz volcano") == []
        newest = writer.add("zebra quartz volcano again", user_id="u").ids
        assert reader.vsearch("zebra quartz volcano") == newest
    finally:
        reader.close()
        writer.close()
    assert integrity(db) == "ok"


def _search_in_child(db: str, out) -> None:
    with Memory(db, embedder=FakeEmbedder()) as mem:
        out.put(len(mem.search("berlin", user_id="u")))


def test_search_in_a_forked_child_gets_threads_of_its_own(tmp_path):
    """Searches run their keyword part on a process-wide thread pool; a child forked
    after the parent used it must not wait on the parent's threads (it has none)."""
    import multiprocessing

    db = str(tmp_path / "fork.db")
    with Memory(db, embedder=FakeEmbedder()) as mem:
        mem.add(["we moved to berlin", "the weather is nice"], user_id="u")
        assert mem.search("berlin", user_id="u")  # the parent's pool exists now
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_search_in_child, args=(db, out))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert out.get(timeout=5) >= 1
