"""Run a CPU-bound extractor in a child process.

spaCy holds the GIL for long stretches: run in a thread of the caller's process it made
every `add` wait for it (p95 41 ms per one-turn add, against 5 ms without it;
`engram bench ingest --batch 1 --embedder fake --synthetic`). In a child process of its
own, at low priority, it uses the other core and leaves the caller's threads alone.

The child is `python -m engramdb.extract.isolated NAME`: it reads one JSON line of turns
per request on stdin and writes one JSON line of results on stdout. It is started on
first use and again if it dies; a dead or garbled child is a ProviderError, so the job
is retried like one that met a dead LLM.

A big request (BIG_REQUEST_CHARS or more: a backlog, long messages) is shared out, whole
sessions at a time (a session's summary needs all its turns), among up to `processes`
children, one per core, and their results put back in the order one child gives them
(issue 14: spaCy alone took longer than the embedding of what it distilled). A
request of fewer sessions than children and SPLIT_TURNS_CHARS or more (a session of
long messages: a job is one session's) is shared out by turns instead, and the first child gives every session's
summary from all of its turns (`summaries_of`; the offline extractor's turns are read
one by one, so nothing else depends on which child reads a turn)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ..errors import ProviderError
from .base import Candidate, Entity, ExtractionResult, Skipped, TurnInput, TurnNotes

BIG_REQUEST_CHARS = 8_000  # below this a second child would cost more (its start, the pipes) than it saves
SPLIT_BY_TURNS = frozenset({"offline"})  # extractors whose children can take a session's turns apart
SPLIT_TURNS_CHARS = 2_000  # a session of long messages (~3,300 characters in `bench ingest --shape long`)


class IsolatedExtractor:
    def __init__(self, name: str, processes: int = 1) -> None:
        self.name = name
        self.command = [sys.executable, "-m", "engramdb.extract.isolated", name]
        self.processes = max(1, min(processes, _cores()))
        self._children = [_Child(self) for _ in range(self.processes)]
        self._boosted = False

    def extract(self, turns: Sequence[TurnInput]) -> ExtractionResult:
        chars = sum(len(t.text) for t in turns)
        parts = [part for part in _share(turns, self.processes) if part] if chars >= BIG_REQUEST_CHARS else [turns]
        parts = parts or [turns]
        summaries: list[Sequence[TurnInput] | None] = [None] * len(parts)
        if chars >= SPLIT_TURNS_CHARS and len(parts) < self.processes and len(turns) > 1 \
                and self.name in SPLIT_BY_TURNS:
            parts = [part for part in _split(turns, self.processes) if part]
            summaries = [turns, *([()] * (len(parts) - 1))]
        if len(parts) == 1:
            return self._children[0].extract(parts[0], self._boosted)
        results: list[ExtractionResult | BaseException | None] = [None] * len(parts)

        def run(index: int) -> None:
            try:
                results[index] = self._children[index].extract(parts[index], self._boosted, summaries[index])
            except BaseException as exc:  # re-raised below, in the caller's thread
                results[index] = exc

        threads = [threading.Thread(target=run, args=(i,), name="engram-extract", daemon=True)
                   for i in range(1, len(parts))]
        for thread in threads:
            thread.start()
        run(0)
        for thread in threads:
            thread.join()
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return _in_order(turns, [r for r in results if isinstance(r, ExtractionResult)])

    def boost(self, on: bool) -> None:
        """Let the children run at normal priority (the backlog is too old) or on idle CPU only."""
        if on == self._boosted:
            return
        self._boosted = on
        for child in self._children:
            child.schedule(on)

    def close(self) -> None:
        """End the children. An extraction in flight is not waited for: the child is killed
        and that extraction fails (its job goes back to the queue)."""
        for child in self._children:
            child.close()


class _Child:
    """One child process, started on first use and again if it died; one request at a time."""

    def __init__(self, owner: IsolatedExtractor) -> None:
        self._owner = owner  # whose `command` starts it
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def extract(self, turns: Sequence[TurnInput], boosted: bool,
                summaries_of: Sequence[TurnInput] | None = None) -> ExtractionResult:
        body: dict[str, Any] = {"turns": [asdict(t) for t in turns]}
        if summaries_of is not None:
            body["summaries_of"] = [asdict(t) for t in summaries_of]
        request = json.dumps(body)
        with self._lock:
            process = self._child(boosted)
            try:
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write(request + "\n")
                process.stdin.flush()
                line = process.stdout.readline()
            except (OSError, ValueError) as exc:
                self._kill()
                raise ProviderError(f"the extraction process failed: {exc}") from exc
            if not line:
                self._kill()
                raise ProviderError("the extraction process exited")
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise ProviderError(f"the extraction process sent garbage: {line[:200]!r}") from exc
        if "error" in reply:
            raise ProviderError(f"extraction failed in the child process: {reply['error']}")
        return result_from_json(reply)

    def _child(self, boosted: bool) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                self._owner.command,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                encoding="utf-8", bufsize=1,
            )
            if boosted:
                _schedule(self._process.pid, True)
        return self._process

    def schedule(self, normal: bool) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            _schedule(process.pid, normal)

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        process = self._process
        if process is not None and self._lock.locked():
            process.kill()
        with self._lock:
            process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                assert process.stdin is not None
                process.stdin.close()  # the child's loop ends at end of input
                process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()


def _share(turns: Sequence[TurnInput], parts: int) -> list[list[TurnInput]]:
    """The turns in `parts` groups of whole sessions, of about equal text (the longest
    session first, each to the group with least text so far); each group keeps the
    turns' order."""
    sessions: dict[str | None, list[int]] = {}
    for index, turn in enumerate(turns):
        sessions.setdefault(turn.session_id, []).append(index)
    sizes = [0] * parts
    owner: dict[str | None, int] = {}
    for session, indexes in sorted(sessions.items(), key=lambda item: -sum(len(turns[i].text) for i in item[1])):
        smallest = min(range(parts), key=lambda p: sizes[p])
        owner[session] = smallest
        sizes[smallest] += sum(len(turns[i].text) for i in indexes)
    return [[t for t in turns if owner[t.session_id] == p] for p in range(parts)]


def _split(turns: Sequence[TurnInput], parts: int) -> list[list[TurnInput]]:
    """The turns in `parts` runs of consecutive turns of about equal text."""
    total = sum(len(t.text) for t in turns)
    out: list[list[TurnInput]] = [[] for _ in range(parts)]
    seen = 0
    for turn in turns:
        out[min(parts - 1, seen * parts // max(1, total))].append(turn)
        seen += len(turn.text)
    return out


def _in_order(turns: Sequence[TurnInput], results: list[ExtractionResult]) -> ExtractionResult:
    """The results of the groups as one child would have given them for all the turns:
    each turn's candidates in turn order, then the summaries in order of their sessions."""
    position = {t.id: i for i, t in enumerate(turns)}
    session_of = {t.id: t.session_id for t in turns}
    first_turn: dict[str | None, int] = {}
    for i, t in enumerate(turns):
        first_turn.setdefault(t.session_id, i)

    def where(sources: Sequence[str]) -> int:
        return min((position[s] for s in sources if s in position), default=len(turns))

    merged = ExtractionResult()
    for result in results:
        merged.merge(result)
    summaries = [c for c in merged.candidates if c.kind == "summary"]
    said = [c for c in merged.candidates if c.kind != "summary"]
    said.sort(key=lambda c: where(c.sources))
    summaries.sort(key=lambda c: first_turn.get(session_of.get(c.sources[0]) if c.sources else None, len(turns)))
    merged.candidates = said + summaries
    merged.notes = {t.id: merged.notes[t.id] for t in turns if t.id in merged.notes}
    merged.skipped.sort(key=lambda s: where(s.sources))
    return merged


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def result_to_json(result: ExtractionResult) -> dict[str, Any]:
    return {
        "candidates": [asdict(c) for c in result.candidates],
        "notes": {k: asdict(v) for k, v in result.notes.items()},
        "skipped": [asdict(s) for s in result.skipped],
        "calls": result.calls, "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens, "seconds": result.seconds,
    }


def result_from_json(data: dict[str, Any]) -> ExtractionResult:
    def candidate(d: dict[str, Any]) -> Candidate:
        return Candidate(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def notes(d: dict[str, Any]) -> TurnNotes:
        return TurnNotes(turn_id=d["turn_id"], keywords=tuple(d["keywords"]),
                         entities=tuple(Entity(**e) for e in d["entities"]), dates=tuple(d["dates"]),
                         phrases=tuple(d.get("phrases", ())))

    return ExtractionResult(
        candidates=[candidate(c) for c in data["candidates"]],
        notes={k: notes(v) for k, v in data["notes"].items()},
        skipped=[Skipped(sources=tuple(s["sources"]), reason=s["reason"], raw=s.get("raw")) for s in data["skipped"]],
        calls=data["calls"], prompt_tokens=data["prompt_tokens"], completion_tokens=data["completion_tokens"],
        seconds=data["seconds"],
    )


def serve(name: str) -> None:
    """The child's loop: a request per line in, a result per line out, until stdin ends."""
    out, sys.stdout = sys.stdout, sys.stderr  # stdout is the protocol: nothing else may print there
    from . import make_extractor

    _idle_priority()
    extractor = make_extractor(name)
    for line in sys.stdin:
        try:
            request = json.loads(line)
            turns = [TurnInput(**t) for t in request["turns"]]
            if "summaries_of" in request:  # a session's turns shared among children (SPLIT_BY_TURNS)
                whole = [TurnInput(**t) for t in request["summaries_of"]]
                reply = result_to_json(extractor.extract(turns, summaries_of=whole))  # type: ignore[call-arg]
            else:
                reply = result_to_json(extractor.extract(turns))
        except Exception as exc:  # reported to the parent, which retries the job later
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def _schedule(pid: int, normal: bool) -> None:
    """A child at normal priority (SCHED_OTHER) or on idle CPU only (SCHED_IDLE), where the
    OS allows it; leaving SCHED_IDLE needs the privilege to, else nothing changes."""
    try:
        policy = os.SCHED_OTHER if normal else os.SCHED_IDLE
        os.sched_setscheduler(pid, policy, os.sched_param(0))
    except (AttributeError, OSError, ProcessLookupError):
        pass


def _idle_priority() -> None:
    """Run only on CPU time nobody else wants (Linux SCHED_IDLE), else at the lowest nice:
    distillation may wait; the caller's adds and searches may not."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError):
        pass
    try:
        os.nice(19)
    except (AttributeError, OSError):
        pass


if __name__ == "__main__":
    serve(sys.argv[1])
