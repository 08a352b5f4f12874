"""A child process for the concurrency and crash tests (run as a script, not collected).

    python helpers_writer.py add DB USER COUNT TAG [THRESHOLD]   COUNT single-turn adds
    python helpers_writer.py loop DB USER TAG [THRESHOLD]        adds of 3 turns until killed
    python helpers_writer.py churn DB USER TAG THRESHOLD         adds and deletes until killed
    python helpers_writer.py search DB USER SECONDS              searches for SECONDS
    python helpers_writer.py reader DB USER [THRESHOLD]          answers commands on stdin

Every add prints its record ids as one JSON line, flushed once add() has returned; a
delete prints {"deleted": id}. The reader answers `vsearch TEXT` with the record ids of
a dense-only search (the in-process vector mirror, not BM25) and `quit` by exiting.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time

from engramdb import Config, Memory
from engramdb.providers.fake import FakeEmbedder
from engramdb.types import Scope


def open_memory(db: str, threshold: str | None = None) -> Memory:
    config = Config(ann_threshold=int(threshold)) if threshold else Config()
    return Memory(db, config=config, embedder=FakeEmbedder())


def integrity(db: object) -> str:
    """SQLite's own check of a database file, through a connection of its own."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def emit(value: object) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def vector_ids(mem: Memory, user: str, text: str, limit: int = 10) -> list[str]:
    scope = Scope(user)
    vector = mem.embedder.embed([text])[0]
    found = mem.store.vector_search(scope, vector, [], limit)
    records = mem.store.by_rowids([hit.rowid for hit in found], scope)
    return [records[hit.rowid].id for hit in found if hit.rowid in records]


def main(argv: list[str]) -> int:
    mode, db, user = argv[:3]
    if mode == "add":
        count, tag = int(argv[3]), argv[4]
        mem = open_memory(db, argv[5] if len(argv) > 5 else None)
        for i in range(count):
            result = mem.add({"role": "user", "content": f"{tag} message {i} word{i % 17}", "id": f"{tag}-{i}"},
                             user_id=user)
            emit(result.ids)
        mem.close()
    elif mode == "loop":
        tag = argv[3]
        mem = open_memory(db, argv[4] if len(argv) > 4 else None)
        i = 0
        while True:
            turns = [f"{tag} turn {i} part {j} about topic{(i + j) % 23} key{tag}n{i}p{j}" for j in range(3)]
            emit(mem.add(turns, user_id=user).ids)
            i += 1
    elif mode == "churn":
        tag, threshold = argv[3], argv[4]
        mem = open_memory(db, threshold)
        i = 0
        while True:
            ids = mem.add([f"{tag} churn {i} part {j} topic{(i * 3 + j) % 29}" for j in range(3)], user_id=user).ids
            emit(ids)
            if i % 2:
                mem.delete(ids[0], user_id=user)
                emit({"deleted": ids[0]})
            if i % 5 == 0:
                vector_ids(mem, user, f"topic{i % 29}")  # keep this process's mirror busy too
            i += 1
    elif mode == "search":
        seconds = float(argv[3])
        mem = open_memory(db)
        deadline = time.monotonic() + seconds
        done = 0
        while time.monotonic() < deadline:
            mem.search(f"message word{done % 17}", user_id=user, limit=5)
            done += 1
        emit({"searches": done})
        mem.close()
    elif mode == "reader":
        mem = open_memory(db, argv[3] if len(argv) > 3 else None)
        emit("ready")
        for line in sys.stdin:
            command, _, text = line.strip().partition(" ")
            if command == "quit":
                break
            if command == "vsearch":
                emit(vector_ids(mem, user, text, limit=50))
        mem.close()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
