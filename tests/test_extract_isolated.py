"""The offline extractor run in a child process gives what it gives in-process; a dead
child is a ProviderError (the job is retried) and the next call starts a new one."""

from __future__ import annotations

import sys

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
    assert isolated._process is None


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
        isolated._kill()
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
