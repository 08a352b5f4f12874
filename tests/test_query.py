"""Query understanding without an LLM (query.py): questions that ask several things are
split; "before / after <event>" questions are anchored on the day the event was said."""

from __future__ import annotations

from engramdb import Config, Memory
from engramdb.providers.fake import FakeEmbedder
from engramdb.query import anchor, anchored_ranking, parts
from engramdb.types import Record, ScoredId


def test_a_question_that_asks_two_things_is_split():
    assert parts("Who did Evan meet on his trip to Canada, and who did he come back from Canada with?") == \
        ["Who did Evan meet on his trip to Canada", "who did he come back from Canada with"]
    assert parts("What is Tim reading? Where does he live?") == ["What is Tim reading", "Where does he live"]


def test_a_question_that_asks_one_thing_is_not():
    for one in ("What do Jon and Gina both have in common?", "According to Gina, what makes Jon a good mentor?",
                "What type of ice cream does Joanna mention that Nate makes and is delicious?", "Hi and what?"):
        assert parts(one) == [], one


def test_before_and_after_name_an_event_not_a_date():
    assert anchor("When did Melanie go on a hike after the road trip?").words == ("road", "trip")
    assert anchor("What did Jean go through before meeting Maria?").direction == "before"
    for dated in ("What did Maria do last weekend before April 10, 2023?", "Where was Tim the week before 16 "
                  "November 2023?", "After how many weeks did Tim call?", "What did he do after that?",
                  "What did Tim read last week?"):
        assert anchor(dated) is None, dated


def _record(rowid: int, text: str, day: str) -> Record:
    at = f"2023-{day}T10:00:00.000000Z"
    return Record(f"m{rowid}", "u", None, None, "turn", text, "user", None, [], {}, at, None, at, at, rowid)


def test_the_anchor_is_the_candidate_that_says_the_event_and_its_side_is_ranked():
    records = {1: _record(1, "We went on a road trip to the canyon", "05-10"),
               2: _record(2, "Hiking after the trip was lovely", "05-20"),
               3: _record(3, "I went hiking with the kids", "04-01"),
               4: _record(4, "A quiet week at home", "03-01"),
               5: _record(5, "Painting class", "02-01")}
    fused = [ScoredId(3, 5.0), ScoredId(2, 4.0), ScoredId(1, 3.0), ScoredId(4, 2.0), ScoredId(5, 1.0)]
    after = anchored_ranking("When did Melanie go hiking after the road trip?", fused, records)
    assert [i.rowid for i in after] == [2, 1], "said on or after the trip's day, in fused order"
    before = anchored_ranking("What did Melanie do before the road trip?", fused, records, max_share=0.8)
    assert [i.rowid for i in before] == [3, 1, 4]
    assert anchored_ranking("What did she do after the concert?", fused, records) == [], "no candidate says it"
    assert anchored_ranking("What did she do before the road trip?", fused, records) == [], "most of them: no signal"


def test_search_with_query_understanding_on_still_finds_each_part(tmp_path):
    config = Config(extractor="none", query_parts=True, query_anchors=True)
    with Memory(tmp_path / "q.db", embedder=FakeEmbedder(), config=config) as mem:
        mem.add([{"role": "user", "content": "In Canada I met my old friend Gabe.", "timestamp": "2023-05-01T10:00:00Z"},
                 {"role": "user", "content": "I came back home with my sister Ana.", "timestamp": "2023-05-02T10:00:00Z"},
                 {"role": "user", "content": "The weather was cold.", "timestamp": "2023-05-03T10:00:00Z"}],
                user_id="evan")
        hits = mem.search("Who did Evan meet in Canada, and who did he come back home with?", user_id="evan",
                          limit=2)
        assert {h.text for h in hits} == {"In Canada I met my old friend Gabe.", "I came back home with my sister Ana."}
