"""The read path's parts: RRF ranks with ties, session routing, speaker routing, dates named in a query."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from engramdb import Config, Memory
from engramdb.providers.fake import FakeEmbedder
from engramdb.retrieval import fuse, rrf
from engramdb.sessions import session_ranks
from engramdb.speakers import named_speakers, said_by
from engramdb.timeframe import matches, timeframes, window_ranking
from engramdb.types import Record, ScoredId


def _record(rowid: int, session: str | None, created_at: str = "2023-05-08T13:56:00.000000Z",
            name: str | None = None) -> Record:
    return Record(id=f"m{rowid}", user_id="u", agent_id=None, session_id=session, kind="turn", text="t", role="user",
                  name=name, sources=[f"m{rowid}"], metadata={}, created_at=created_at, valid_to=None,
                  recorded_at=created_at, updated_at=created_at, seq=rowid)


def test_rrf_gives_tied_scores_one_rank():
    keyword = [ScoredId(1, 5.0), ScoredId(2, 5.0), ScoredId(3, 5.0)]  # cannot tell them apart
    dense = [ScoredId(3, 0.9), ScoredId(1, 0.5), ScoredId(2, 0.4)]
    assert [item.rowid for item in rrf([keyword, dense], k=10)] == [3, 1, 2]


def test_session_ranks_score_a_session_by_its_best_turns():
    records = {1: _record(1, "a"), 2: _record(2, "b"), 3: _record(3, "b"), 4: _record(4, "b"), 5: _record(5, None),
               6: _record(6, "c")}
    keyword = [ScoredId(1, 5.0), ScoredId(2, 3.0), ScoredId(3, 3.0), ScoredId(5, 9.0)]
    ranks = session_ranks(keyword, [1, 2, 3, 4, 5, 6], records)
    # b (3 + 3) beats a (5); 4 shares b's rank though no keyword matched it; no session, or
    # a session nothing matched: no rank
    assert ranks == {2: 1, 3: 1, 4: 1, 1: 2}


def test_named_speakers_are_whole_words_of_the_query():
    records = [_record(1, "s", name="Tim"), _record(2, "s", name="John"), _record(3, "s", name="Jo"),
               _record(4, "s", name=None)]
    assert named_speakers("What books has tim read?", records) == {"Tim"}
    assert named_speakers("What did John and Tim plan?", records) == {"Tim", "John"}
    assert named_speakers("What time did Johnny leave?", records) == set()  # not inside other words


def test_said_by_keeps_the_named_speakers_turns_only_when_that_discriminates():
    records = {1: _record(1, "s", name="Tim"), 2: _record(2, "s", name="John"), 3: _record(3, "s", name="Tim")}
    ranking = [ScoredId(2, 0.9), ScoredId(1, 0.8), ScoredId(3, 0.7)]
    assert [item.rowid for item in said_by(ranking, records, frozenset({"Tim"}))] == [1, 3]
    assert said_by(ranking, records, frozenset({"Tim", "John"})) == []  # keeps everything
    assert said_by(ranking, records, frozenset()) == []


def test_said_by_counts_a_derived_memory_as_its_subjects():
    from dataclasses import replace

    fact = replace(_record(4, "s"), kind="fact", role=None, metadata={"subject": "Tim"})
    other = replace(_record(5, "s"), kind="fact", role=None, metadata={"subject": "John"})
    records = {1: _record(1, "s", name="Tim"), 2: _record(2, "s", name="John"), 4: fact, 5: other}
    ranking = [ScoredId(5, 0.95), ScoredId(4, 0.9), ScoredId(2, 0.8), ScoredId(1, 0.7)]
    assert [item.rowid for item in said_by(ranking, records, frozenset({"Tim"}))] == [4, 1]


def test_without_echoes_drops_derived_memories_whose_sources_are_shown():
    from dataclasses import replace

    from engramdb.retrieval import without_echoes

    turn = _record(1, "s")
    echo = replace(_record(2, "s"), kind="event", sources=["m1"])
    new = replace(_record(3, "s"), kind="fact", sources=["m1", "m9"])
    records = {1: turn, 2: echo, 3: new}
    ranking = [ScoredId(1, 0.9), ScoredId(2, 0.8), ScoredId(3, 0.7)]
    assert [item.rowid for item in without_echoes(ranking, records)] == [1, 3]
    # a derived memory ranked above its turn stays, and so does the turn (the evidence itself)
    assert [item.rowid for item in without_echoes([ScoredId(2, 1.0), ScoredId(1, 0.5)], records)] == [2, 1]


def test_fuse_prefers_the_turns_of_the_speaker_the_query_names():
    records = {1: _record(1, "a", name="John"), 2: _record(2, "b", name="Tim"), 3: _record(3, "c", name="John")}
    dense = [ScoredId(1, 0.9), ScoredId(2, 0.8), ScoredId(3, 0.1)]  # the embedding does not see who spoke
    keyword = [ScoredId(1, 2.0), ScoredId(2, 2.0)]
    assert [item.rowid for item in fuse("Which novel did Tim read?", dense, keyword, records, k=10)][:2] == [2, 1]
    assert [item.rowid for item in fuse("Which novel was read?", dense, keyword, records, k=10)][:2] == [1, 2]


def test_timeframes_of_explicit_dates():
    (day,) = timeframes("What painting did Melanie show on October 13, 2023?")
    assert day.start == datetime(2023, 10, 13, tzinfo=timezone.utc)
    (month,) = timeframes("What did Maria donate in December 2023?")
    assert (month.start.month, month.end.year) == (12, 2024)
    (year,) = timeframes("How many times has she gone to the beach in 2023?")
    assert year.start.year == 2023 and year.end.year == 2024
    (june,) = timeframes("When did Melanie go camping in June?")
    assert june.month == 6 and june.start is None
    assert timeframes("May I ask where Jon went last week?") == []
    assert timeframes("What did Gina find on 31 February, 2023?") == []
    assert matches([june], "2024-06-30T10:00:00Z") and matches([june], "2023-07-03T10:00:00Z")
    assert not matches([june], "2023-08-01T10:00:00Z")
    assert matches([day], "2023-10-15T10:00:00Z")  # said in the days after
    assert not matches([day], "2023-10-12T10:00:00Z")


def test_window_ranking_only_when_the_window_singles_out_a_minority():
    records = {i: _record(i, "s", f"2023-0{1 + i % 3}-10T00:00:00Z") for i in range(1, 10)}
    ranked = [ScoredId(i, 1.0 / i) for i in range(1, 10)]
    march = timeframes("what happened in March 2023?")
    assert [item.rowid for item in window_ranking(ranked, records, march)] == [2, 5, 8]
    assert window_ranking(ranked, records, timeframes("what happened in 2023?")) == []
    assert window_ranking(ranked, records, []) == []


def test_search_lifts_the_turns_of_the_session_that_matches(tmp_path):
    with Memory(tmp_path / "m.db", embedder=FakeEmbedder()) as mem:
        mem.add([{"role": "user", "content": "We went hiking near the glacier lake", "name": "Ana"},
                 {"role": "user", "content": "The glacier trail was steep and the lake was cold", "name": "Ben"},
                 {"role": "user", "content": "Yes, it was amazing!", "name": "Ana"}], user_id="u", session_id="s1")
        mem.add([{"role": "user", "content": "Amazing news: I got the job", "name": "Ana"},
                 {"role": "user", "content": "It was a long day at work", "name": "Ben"}], user_id="u", session_id="s2")
        texts = [hit.text for hit in mem.search("was the glacier lake amazing?", user_id="u", limit=5)]
    assert texts.index("Yes, it was amazing!") < texts.index("Amazing news: I got the job")


def test_search_prefers_turns_said_in_the_month_the_query_names(tmp_path):
    with Memory(tmp_path / "m.db", embedder=FakeEmbedder()) as mem:
        for month in range(1, 7):
            mem.add({"role": "user", "content": f"I painted a sunset ({month})",
                     "timestamp": f"2023-0{month}-15T10:00:00Z"}, user_id="u", session_id=f"s{month}")
        hits = mem.search("What did I paint in April 2023?", user_id="u", limit=3)
    assert hits[0].created_at.startswith("2023-04")


def test_every_month_name_and_abbreviation_parses():
    import calendar

    for number in range(1, 13):
        for name in (calendar.month_name[number], calendar.month_abbr[number]):
            (frame,) = timeframes(f"Where did Dmitri travel in {name}?")
            assert frame.month == number, name
    (sept,) = timeframes("What happened in Sept. 2023?")
    assert (sept.start.month, sept.start.year) == (9, 2023)


@pytest.mark.parametrize("modulus", [2, 50])  # a broad narrowing (post-filtered) and a selective one (exact path)
def test_a_narrowed_search_is_the_unnarrowed_one_filtered(tmp_path, modulus):
    # Dense feedback searches again from the best candidates, which a filter changes by
    # design (the filter holds for them too): off here, where the store's narrowing is the point.
    with Memory(tmp_path / "n.db", embedder=FakeEmbedder(), config=Config(dense_feedback=False)) as mem:
        for start in range(0, 300, 100):
            mem.add([{"content": f"note {i} about the garden and the {['roses', 'tulips', 'ferns'][i % 3]}"}
                     for i in range(start, start + 100)], user_id="u", metadata={"batch": start})
        records = {r.id: r for r in mem.list(user_id="u", limit=1000)}
        for query in ("garden roses", "tulips note 17"):
            everything = mem.search(query, user_id="u", limit=1000)
            wanted = [h.id for h in everything if int(h.text.split()[1]) % modulus == 0]
            narrowed = mem.search(query, user_id="u", limit=5, filters={"id": {"in": [
                rid for rid, r in records.items() if int(r.text.split()[1]) % modulus == 0]}})
            assert [h.id for h in narrowed] == wanted[:5]
