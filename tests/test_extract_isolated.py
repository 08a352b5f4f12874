"""The offline extractor run in a child process gives what it gives in-process; a dead
child is a ProviderError (the job is retried) and the next call starts a new one."""

from __future__ import annotations

import sys

from dataclasses import replace

import pytest

from engramdb.errors import ProviderError
from engramdb.extract.base import TurnInput
from engramdb.extract.isolated import IsolatedExtractor
from engramdb.extract.offline import OfflineExtractor

TURNS = [
    TurnInput("t1", "user", "I moved to Lisbon last May.", "2023-07-03T10:00:00Z", "Ana", "s1"),
    TurnInput("t2", "user", "My sister Marta works at a bakery.", "2023-07-03T10:01:00Z", "Ana", "s1"),
    TurnInput("t3", "assistant", "That sounds lovely!", "2023-07-03T10:02:00Z", None, "s1"),
]


def comparable(result):
    return ([(c.kind, c.text, c.subject, c.attribute, c.value, c.sources, c.when, c.keywords) for c in result.candidates],
            {k: (v.keywords, v.entities, v.dates) for k, v in result.notes.items()})


def test_the_child_process_extracts_exactly_what_the_parent_would():
    isolated = IsolatedExtractor("offline")
    try:
        here, there = OfflineExtractor().extract(TURNS), isolated.extract(TURNS)
        assert comparable(there) == comparable(here)
        assert any(c.attribute == "residence" and c.value == "Lisbon" for c in there.candidates)
    finally:
        isolated.close()
    assert all(child._process is None for child in isolated._children)


def test_a_child_dying_mid_request_is_a_provider_error_and_is_replaced():
    isolated = IsolatedExtractor("offline")
    real = isolated.command
    try:
        isolated.command = [sys.executable, "-c", "import sys; sys.stdin.readline()"]  # reads, then dies
        with pytest.raises(ProviderError, match="exited"):
            isolated.extract(TURNS[:1])
        isolated.command = [sys.executable, "-c", "import sys; sys.stdin.readline(); print('not json')"]
        with pytest.raises(ProviderError, match="garbage"):
            isolated.extract(TURNS[:1])
        isolated.command = real
        isolated._children[0]._kill()
        assert isolated.extract(TURNS[:1]).candidates  # a new, real child took over
    finally:
        isolated.close()


def test_an_unknown_extractor_in_the_child_is_a_provider_error():
    isolated = IsolatedExtractor("no-such-extractor")
    try:
        with pytest.raises(ProviderError):
            isolated.extract(TURNS[:1])
    finally:
        isolated.close()


def _backlog() -> list[TurnInput]:
    """Four sessions, interleaved as jobs of several adds can be, past BIG_REQUEST_CHARS:
    facts that supersede each other across sessions, events, and sessions long enough
    for a summary."""
    said = [
        "I moved to Lisbon last May and I love the light there.",
        "My sister Marta works at a bakery near the river.",
        "Yesterday I went to a pottery class with my friend Joana.",
        "I adopted a dog named Rex two weeks ago, he is a beagle.",
        "I started a new job as a nurse at the city hospital.",
        "Last weekend I ran a half marathon in Porto with my cousin.",
    ]
    turns = []
    for n in range(48):
        session = f"s{n % 4}"
        who = ("Ana", "Ben")[n % 2]
        text = f"{said[n % len(said)]} " + " ".join(["We also talked about the garden and the weather."] * 3)
        if n == 40:
            text = "I moved to Madrid last week, Lisbon is behind me now."
        turns.append(TurnInput(f"t{n}", "user", text, f"2023-07-{3 + n // 12:02d}T10:{n % 60:02d}:00Z", who, session))
    return turns


def test_a_big_request_shared_among_children_gives_what_one_gives():
    from engramdb.extract.isolated import BIG_REQUEST_CHARS, _cores

    if _cores() < 2:
        pytest.skip("one core: one child")
    turns = _backlog()
    assert sum(len(t.text) for t in turns) >= BIG_REQUEST_CHARS
    isolated = IsolatedExtractor("offline", processes=2)
    try:
        here, there = OfflineExtractor().extract(turns), isolated.extract(turns)
        assert all(child._process is not None for child in isolated._children)  # both children worked
        assert comparable(there) == comparable(here)  # the same candidates, in the same order
        assert list(there.notes) == [t.id for t in turns]
        assert sum(c.kind == "summary" for c in there.candidates) >= 2
        assert any(c.value == "Madrid" for c in there.candidates)
    finally:
        isolated.close()


def test_one_big_session_is_shared_among_children_by_turns_and_summarised_whole():
    from engramdb.extract.isolated import BIG_REQUEST_CHARS, _cores, _split

    if _cores() < 2:
        pytest.skip("one core: one child")
    turns = [replace(t, session_id="s0") for t in _backlog()]  # a job is one session's turns
    assert sum(len(t.text) for t in turns) >= BIG_REQUEST_CHARS
    halves = _split(turns, 2)
    assert [t.id for half in halves for t in half] == [t.id for t in turns] and all(halves)
    isolated = IsolatedExtractor("offline", processes=2)
    try:
        here, there = OfflineExtractor().extract(turns), isolated.extract(turns)
        assert all(child._process is not None for child in isolated._children)  # both children worked
        assert comparable(there) == comparable(here)  # the same candidates, the one summary of all turns
        assert sum(c.kind == "summary" for c in there.candidates) == 1
        assert list(there.notes) == [t.id for t in turns]
    finally:
        isolated.close()


def test_a_small_request_goes_to_one_child():
    isolated = IsolatedExtractor("offline", processes=2)
    try:
        isolated.extract(TURNS)
        assert sum(child._process is not None for child in isolated._children) == 1
    finally:
        isolated.close()


def test_sessions_are_shared_out_whole_and_balanced():
    from engramdb.extract.isolated import _share

    turns = _backlog()
    parts = _share(turns, 2)
    assert sorted(t.id for part in parts for t in part) == sorted(t.id for t in turns)
    sessions = [{t.session_id for t in part} for part in parts]
    assert not sessions[0] & sessions[1] and all(sessions)
    for part in parts:  # each keeps the turns' order
        assert [t.id for t in part] == [t.id for t in turns if t in part]
