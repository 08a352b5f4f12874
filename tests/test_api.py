"""The public Memory API on a real SQLite file."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from engramdb import ConfigError, Hit, InvalidInputError, Memory, NotFoundError, Record, UsageError
from engramdb.clock import format_ts
from engramdb.providers.fake import FakeEmbedder
from engramdb.retrieval import MIN_BUDGET_TOKENS, PREAMBLE, estimate_tokens
from engramdb.stores.sqlite import content_hash

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class FixedClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def turns(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


# -- add --------------------------------------------------------------------------------


def test_add_string_dict_and_list(mem):
    one = mem.add("I love hiking", user_id="alice")
    assert len(one) == 1 and isinstance(one.records[0], Record)
    assert (one.records[0].role, one.records[0].text, one.records[0].kind) == ("user", "I love hiking", "turn")
    two = mem.add({"role": "assistant", "content": "Hiking is great"}, user_id="alice")
    assert two.records[0].role == "assistant"
    three = mem.add(["first", {"role": "assistant", "content": "second"}, "third"], user_id="alice")
    assert [r.text for r in three] == ["first", "second", "third"]
    assert [r.role for r in three] == ["user", "assistant", "user"]
    assert len(set(one.ids + two.ids + three.ids)) == 5
    assert [r.text for r in mem.list(user_id="alice")] == [
        "I love hiking", "Hiking is great", "first", "second", "third"
    ]


def test_add_preserves_ids_sources_timestamps_name_scope_and_metadata(mem):
    result = mem.add(
        [
            {"id": "m1", "role": "user", "name": "Alice", "content": "hi", "timestamp": "2024-03-05T10:00:00+02:00"},
            {"id": "42", "role": "assistant", "content": "hello", "timestamp": "2024-03-05 09:00:01"},
            {"role": "user", "content": "no id"},
        ],
        user_id="alice", session_id="s1", agent_id="bot", metadata={"topic": "greetings", "n": [1, 2]},
    )
    first, second, third = result.records
    assert first.sources == ["m1"] and second.sources == ["42"]
    assert third.sources == [third.id]  # without a caller id, the record is its own source
    assert first.name == "Alice" and second.name is None
    assert first.created_at == "2024-03-05T08:00:00.000000Z"  # converted to UTC
    assert second.created_at == "2024-03-05T09:00:01.000000Z"  # naive taken as UTC
    for rec in result:
        assert (rec.user_id, rec.session_id, rec.agent_id) == ("alice", "s1", "bot")
        assert rec.metadata == {"topic": "greetings", "n": [1, 2]}
        assert rec.id.startswith("mem_")
        assert TS.match(rec.recorded_at)
    assert mem.get(first.id) == first


def test_default_timestamp_is_now(db_path, fake_embedder):
    moment = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    with Memory(db_path, embedder=fake_embedder, clock=FixedClock(moment)) as memory:
        (rec,) = memory.add("now", user_id="alice").records
        assert rec.created_at == "2025-01-02T03:04:05.678000Z" == rec.recorded_at
        (old,) = memory.add({"content": "then", "timestamp": "2020-01-01T00:00:00Z"}, user_id="alice").records
        assert old.created_at == "2020-01-01T00:00:00.000000Z"
        assert old.recorded_at == "2025-01-02T03:04:05.678000Z"


def test_default_timestamp_with_system_clock(mem):
    before = format_ts(datetime.now(timezone.utc))
    (rec,) = mem.add("now", user_id="alice").records
    after = format_ts(datetime.now(timezone.utc))
    assert before <= rec.created_at <= after


def test_searchable_immediately_and_from_a_fresh_memory(db_path, fake_embedder):
    with Memory(db_path, embedder=fake_embedder) as first:
        (rec,) = first.add("the quarterly kangaroo report", user_id="alice").records
        assert [h.id for h in first.search("kangaroo", user_id="alice")] == [rec.id]
        with Memory(db_path, embedder=FakeEmbedder()) as second:
            assert [h.id for h in second.search("kangaroo report", user_id="alice")] == [rec.id]
            (rec2,) = second.add("wombat sighting", user_id="alice").records
        # the first instance sees the other instance's write too
        assert rec2.id in [h.id for h in first.search("wombat", user_id="alice")]


# -- search -----------------------------------------------------------------------------


def test_search_returns_hits_with_fields(mem):
    (rec,) = mem.add(
        {"id": "src", "role": "assistant", "name": "Bot", "content": "Your flight to Tokyo leaves at 9",
         "timestamp": "2024-05-01T09:00:00Z"},
        user_id="alice", session_id="trip", metadata={"k": "v"},
    ).records
    mem.add("unrelated musings about gardening", user_id="alice")
    hits = mem.search("flight Tokyo", user_id="alice", limit=5)
    assert isinstance(hits[0], Hit)
    top = hits[0]
    assert (top.id, top.text, top.kind, top.sources) == (rec.id, rec.text, "turn", ["src"])
    assert (top.session_id, top.created_at, top.valid_to) == ("trip", "2024-05-01T09:00:00.000000Z", None)
    assert (top.metadata, top.role, top.name) == ({"k": "v"}, "assistant", "Bot")
    assert top.score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(mem.search("flight Tokyo", user_id="alice", limit=1)) == 1
    assert mem.search("flight", user_id="nobody") == []


def test_search_and_list_filters(mem):
    mem.add(
        [
            {"id": "a", "role": "user", "content": "apple pie recipe", "timestamp": "2024-01-10T00:00:00Z"},
            {"id": "b", "role": "assistant", "content": "apple cider recipe", "timestamp": "2024-02-10T00:00:00Z"},
        ],
        user_id="alice", metadata={"topic": "food"},
    )
    mem.add({"id": "c", "content": "apple stock price", "timestamp": "2024-03-10T00:00:00Z"},
            user_id="alice", metadata={"topic": "money"})

    def found(filters):
        return sorted(h.sources[0] for h in mem.search("apple recipe", user_id="alice", filters=filters))

    def listed(filters):
        return [r.sources[0] for r in mem.list(user_id="alice", filters=filters)]

    assert found(None) == ["a", "b", "c"]
    assert found({"kind": "turn"}) == ["a", "b", "c"]
    assert found({"kind": "fact"}) == []
    assert found({"role": "assistant"}) == ["b"]
    assert found({"role": {"in": ["user"]}}) == ["a", "c"]
    assert found({"created_at": {"gte": "2024-02-01", "lt": "2024-03-01"}}) == ["b"]
    assert found({"created_at": {"lt": "2024-02-01T00:00:00Z"}}) == ["a"]
    assert found({"metadata.topic": "money"}) == ["c"]
    assert found({"metadata.topic": {"ne": "money"}}) == ["a", "b"]
    assert found({"source": "b"}) == ["b"]
    assert found({"source": "b", "role": "user"}) == []
    assert listed({"metadata.topic": "food"}) == ["a", "b"]
    assert listed({"created_at": {"gt": "2024-02-10T00:00:00Z"}}) == ["c"]


def test_session_and_agent_narrowing(mem):
    mem.add("lunch plans for monday", user_id="alice", session_id="s1", agent_id="planner")
    mem.add("lunch plans for tuesday", user_id="alice", session_id="s2", agent_id="planner")
    mem.add("lunch plans for friday", user_id="alice", session_id="s2", agent_id="chef")

    def texts(**scope):
        return sorted(h.text for h in mem.search("lunch plans", user_id="alice", **scope))

    assert len(texts()) == 3
    assert texts(session_id="s1") == ["lunch plans for monday"]
    assert texts(agent_id="chef") == ["lunch plans for friday"]
    assert texts(session_id="s2", agent_id="planner") == ["lunch plans for tuesday"]
    assert [r.text for r in mem.list(user_id="alice", session_id="s2")] == [
        "lunch plans for tuesday", "lunch plans for friday"
    ]
    assert [r.text for r in mem.list(user_id="alice", agent_id="planner")] == [
        "lunch plans for monday", "lunch plans for tuesday"
    ]


# -- list, get, update, delete, history -------------------------------------------------


def test_list_pagination_and_time_order(mem):
    items = [{"content": f"note {i}", "timestamp": f"2024-01-{28 - i:02d}T00:00:00Z"} for i in range(7)]
    mem.add(items, user_id="alice")
    everything = mem.list(user_id="alice")
    assert [r.text for r in everything] == [f"note {i}" for i in reversed(range(7))]
    pages = [mem.list(user_id="alice", limit=3, offset=o) for o in (0, 3, 6, 9)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert [r.id for p in pages for r in p] == [r.id for r in everything]


def test_get_update_delete_history(mem):
    (rec,) = mem.add("I work at Acme", user_id="alice", metadata={"a": 1}).records
    updated = mem.update(rec.id, "I work at Globex", user_id="alice", reason="new job")
    assert updated.text == "I work at Globex" and updated.metadata == {"a": 1}
    assert mem.get(rec.id).text == "I work at Globex"
    assert [h.id for h in mem.search("Globex", user_id="alice")] == [rec.id]
    assert mem.search("Acme", user_id="alice", filters={"source": "nothing"}) == []
    assert all(h.text != "I work at Acme" for h in mem.search("Acme", user_id="alice"))
    assert mem.update(rec.id, "I work at Initech", metadata={"b": 2}).metadata == {"b": 2}
    history = mem.history(rec.id, user_id="alice")
    assert [(v.version, v.event, v.text) for v in history] == [
        (1, "add", "I work at Acme"), (2, "update", "I work at Globex"), (3, "update", "I work at Initech")
    ]
    assert history[1].reason == "new job" and history[1].actor == "alice"

    mem.delete(rec.id, user_id="alice")
    with pytest.raises(NotFoundError):
        mem.get(rec.id)
    assert mem.list(user_id="alice") == []
    assert mem.search("Initech", user_id="alice") == []
    tomb = mem.history(rec.id)
    assert [v.event for v in tomb] == ["add", "update", "update", "delete"]
    assert all(v.text is None for v in tomb)
    assert tomb[-1].content_hash == content_hash("I work at Initech")
    with pytest.raises(NotFoundError):
        mem.delete(rec.id)
    with pytest.raises(NotFoundError):
        mem.update(rec.id, "again")


def test_forget(mem):
    mem.add(["a one", "a two"], user_id="alice", session_id="s1")
    mem.add("a three", user_id="alice", session_id="s2")
    mem.add("b one", user_id="bob")
    assert mem.forget(user_id="alice", session_id="s1") == 2
    assert [r.text for r in mem.list(user_id="alice")] == ["a three"]
    assert mem.forget(user_id="alice") == 1
    assert mem.list(user_id="alice") == []
    assert mem.search("a three", user_id="alice") == []
    assert [r.text for r in mem.list(user_id="bob")] == ["b one"]
    assert mem.forget(user_id="alice") == 0


def test_reset_is_guarded(mem):
    mem.add("keep me", user_id="alice")
    mem.add("keep me too", user_id="bob")
    for bad in ({}, {"confirm": False}, {"confirm": "yes"}, {"confirm": 1}):
        with pytest.raises(UsageError):
            mem.reset(**bad)
    assert mem.stats()["records"] == 2
    mem.reset(confirm=True)
    assert mem.stats()["records"] == 0
    assert mem.search("keep", user_id="alice") == []
    mem.add("fresh start", user_id="alice")
    assert [h.text for h in mem.search("fresh start", user_id="alice")] == ["fresh start"]


# -- export / import --------------------------------------------------------------------


@pytest.fixture
def exported(mem, tmp_path):
    (a,) = mem.add("Paris is lovely in spring", user_id="alice", session_id="s1", metadata={"m": 1}).records
    mem.add(["The Louvre was crowded", "We ate croissants"], user_id="alice", session_id="s2")
    mem.add("bob's secret", user_id="bob")
    mem.update(a.id, "Paris is lovely in April", reason="precise")
    path = tmp_path / "alice.cube.jsonl"
    assert mem.export(path, user_id="alice") == 3
    return path, mem.list(user_id="alice")


def test_export_writes_a_cube(exported):
    path, records = exported
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "engram-cube" and header["embedder"] == {"name": "fake-hash-64", "dim": 64}
    assert header["scope"]["user_id"] == "alice"
    assert [json.loads(line)["record"]["id"] for line in lines[1:]] == [r.id for r in records]
    assert "bob's secret" not in path.read_text()


def test_import_same_embedder_keeps_vectors(exported, tmp_path, mem):
    path, records = exported
    embedder = FakeEmbedder()
    with Memory(tmp_path / "other.db", embedder=embedder) as other:
        assert other.import_(path) == 3
        assert embedder.calls == 0  # vectors came from the cube
        assert other.list(user_id="alice") == records
        assert other.history(records[0].id) == mem.history(records[0].id)
        assert other.list(user_id="bob") == []
        hits = other.search("Louvre crowded", user_id="alice")
        assert embedder.calls == 1  # the query only
        assert hits[0].text == "The Louvre was crowded"
        assert other.import_(path) == 0  # idempotent
        assert len(other.list(user_id="alice")) == 3


def test_import_other_embedder_reembeds(exported, tmp_path):
    path, records = exported
    embedder = FakeEmbedder(dim=32)
    with Memory(tmp_path / "other.db", embedder=embedder) as other:
        assert other.import_(path) == 3
        assert embedder.calls >= 1
        calls = embedder.calls
        assert [r.text for r in other.list(user_id="alice")] == [r.text for r in records]
        assert other.search("croissants", user_id="alice")[0].text == "We ate croissants"
        assert embedder.calls == calls + 1
        assert other.stats()["embedder"] == "fake-hash-32"


def test_import_with_user_override_moves_scope_under_new_ids(exported, tmp_path, mem):
    path, records = exported
    with Memory(tmp_path / "other.db", embedder=FakeEmbedder()) as other:
        assert other.import_(path, user_id="carol") == 3
        moved = other.list(user_id="carol")
        assert other.list(user_id="alice") == []
        assert [r.text for r in moved] == [r.text for r in records]
        assert not {r.id for r in moved} & {r.id for r in records}
        for new, old in zip(moved, records):
            assert new.user_id == "carol"
            assert new.sources == ([new.id] if old.sources == [old.id] else old.sources)
            assert [v.text for v in other.history(new.id, user_id="carol")] == [
                v.text for v in mem.history(old.id)
            ]
        assert other.search("Louvre", user_id="carol")[0].text == "The Louvre was crowded"
    # importing back into the source under a new user leaves alice untouched
    assert mem.import_(path, user_id="dave") == 3
    assert mem.list(user_id="alice") == records


# -- context ----------------------------------------------------------------------------


def test_context_within_budget_a_whole_scope_in_time_order(mem):
    mem.add(
        [{"content": f"travel note {i} about the trip to Japan", "timestamp": f"2024-02-0{i}T10:00:00Z"}
         for i in (3, 1)],
        user_id="alice", session_id="later",
    )
    mem.add(
        [{"content": f"travel memory {i} about the trip to Japan", "timestamp": f"2024-01-0{i}T10:00:00Z"}
         for i in (2, 1)],
        user_id="alice", session_id="earlier",
    )
    block = mem.context("trip to Japan", user_id="alice", budget_tokens=1000)
    assert block.splitlines() == [
        PREAMBLE,
        "- [1 January 2024] user: travel memory 1 about the trip to Japan",
        "- [2 January 2024] user: travel memory 2 about the trip to Japan",
        "- [1 February 2024] user: travel note 1 about the trip to Japan",
        "- [3 February 2024] user: travel note 3 about the trip to Japan",
    ]
    for budget in (MIN_BUDGET_TOKENS, 60, 80):
        small = mem.context("trip to Japan", user_id="alice", budget_tokens=budget)
        assert len(small) / 4 <= budget and "travel" in small
        assert estimate_tokens(small) <= budget
    assert mem.context("trip to Japan", user_id="alice", budget_tokens=60).count("travel") < 4
    assert mem.context("trip to Japan", user_id="bob") == ""


def test_recall_reads_a_whole_scope_of_many_pages_once_each_and_in_time_order(mem):
    from engramdb import memory as memory_module

    count = memory_module.WHOLE_SCOPE_PAGE * 2 + 5  # three pages
    mem.add([{"content": f"note {i}", "timestamp": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z"}
             for i in reversed(range(count))], user_id="carol")
    whole = mem.recall("note", user_id="carol", budget_tokens=5000)
    assert whole.complete
    assert [h.text for h in whole.hits] == [f"note {i}" for i in range(count)]
    tight = mem.recall("note", user_id="carol", budget_tokens=count + 20)  # more tokens than records, too few for all
    assert not tight.complete and 0 < len(tight.hits) < count


PAINTED = "we painted the kitchen yellow, then the hallway, the stairs and the attic"


def test_recall_returns_the_whole_small_memory_in_time_order(mem):
    """Small-memory mode: when every memory of the scope fits the budget, all come back,
    including ones the query shares no word with, and `complete` says so."""
    mem.add([{"content": "I adopted a cat called Miso", "timestamp": "2024-01-01T10:00:00Z"},
             {"content": PAINTED, "timestamp": "2024-01-02T10:00:00Z"}],
            user_id="alice", session_id="s1")
    whole = mem.recall("what is my pet's name?", user_id="alice", budget_tokens=500)
    assert whole.complete
    assert [h.text for h in whole.hits] == ["I adopted a cat called Miso", PAINTED]
    assert "kitchen yellow" in whole.text and whole.text == mem.context(
        "what is my pet's name?", user_id="alice", budget_tokens=500)
    assert len(whole.sources) == 2 and set(whole.sources) == {s for h in whole.hits for s in h.sources}
    # Too small a budget for everything: retrieval chooses, and says it is not complete.
    partial = mem.recall("cat called Miso", user_id="alice", budget_tokens=MIN_BUDGET_TOKENS)
    assert not partial.complete
    assert [h.text for h in partial.hits] == ["I adopted a cat called Miso"]
    assert estimate_tokens(partial.text) <= MIN_BUDGET_TOKENS
    # Filters and scope narrow the whole memory too.
    narrowed = mem.recall("anything", user_id="alice", budget_tokens=500,
                          filters={"created_at": {"gte": "2024-01-02T00:00:00Z"}})
    assert narrowed.complete and [h.text for h in narrowed.hits] == [PAINTED]
    empty = mem.recall("anything", user_id="bob", budget_tokens=500)
    assert empty.text == "" and empty.hits == [] and not empty.complete


def test_recall_validates_like_search(mem):
    mem.add("hello there", user_id="alice")
    for bad in ("", "   ", None, 3):
        with pytest.raises(InvalidInputError):
            mem.recall(bad, user_id="alice")
    with pytest.raises(InvalidInputError):
        mem.recall("hello", user_id="alice", budget_tokens=0)


# -- lifecycle --------------------------------------------------------------------------


def test_context_manager_closes(db_path, fake_embedder):
    with Memory(db_path, embedder=fake_embedder) as memory:
        memory.add("x", user_id="alice")
    from engramdb import UsageError

    with pytest.raises(UsageError, match="closed"):
        memory.list(user_id="alice")
    assert "sqlite:///" in repr(memory)


def test_reopen_with_other_embedder_needs_reembed(db_path):
    with Memory(db_path, embedder=FakeEmbedder()) as memory:
        memory.add(["the red balloon floated away", "a blue whale swam by"], user_id="alice")
    with Memory(db_path, embedder=FakeEmbedder(dim=32)) as memory:
        with pytest.raises(ConfigError, match="reembed"):
            memory.search("balloon", user_id="alice")
        with pytest.raises(ConfigError):
            memory.add("more", user_id="alice")
        assert len(memory.list(user_id="alice")) == 2  # reads without the embedder still work
    embedder = FakeEmbedder(dim=32)
    with Memory(db_path, embedder=embedder, reembed=True) as memory:
        hits = memory.search("red balloon", user_id="alice")
        assert hits[0].text == "the red balloon floated away"
        assert memory.stats()["embedder"] == "fake-hash-32"
        assert embedder.calls >= 2  # the backfill, then the query
    with Memory(db_path, embedder=FakeEmbedder(dim=32)) as memory:  # now recorded: no error
        assert memory.search("blue whale", user_id="alice")[0].text == "a blue whale swam by"


# -- isolation --------------------------------------------------------------------------


def test_user_isolation_across_every_method(mem, tmp_path):
    (a,) = mem.add({"id": "s1", "content": "alice's pin code is 4321"}, user_id="alice", session_id="shared",
                   agent_id="bot", metadata={"k": "v"}).records
    mem.add("bob likes pin badges", user_id="bob", session_id="shared", agent_id="bot")
    for filters in (None, {"id": a.id}, {"source": "s1"}, {"metadata.k": "v"}, {"session_id": "shared"}):
        assert a.id not in [h.id for h in mem.search("alice pin code 4321", user_id="bob", filters=filters)]
        assert a.id not in [r.id for r in mem.list(user_id="bob", filters=filters)]
        assert "4321" not in mem.context("alice pin code 4321", user_id="bob", filters=filters)
    assert a.id not in [h.id for h in mem.search("pin code", user_id="bob", session_id="shared", agent_id="bot")]
    with pytest.raises(NotFoundError):
        mem.get(a.id, user_id="bob")
    with pytest.raises(NotFoundError):
        mem.update(a.id, "hacked", user_id="bob")
    with pytest.raises(NotFoundError):
        mem.delete(a.id, user_id="bob")
    with pytest.raises(NotFoundError):
        mem.history(a.id, user_id="bob")
    assert mem.forget(user_id="bob", session_id="shared") == 1
    path = tmp_path / "bob.jsonl"
    assert mem.export(path, user_id="bob") == 0
    assert "4321" not in path.read_text()
    assert mem.stats(user_id="bob")["records"] == 0
    assert mem.get(a.id, user_id="alice").text == "alice's pin code is 4321"
    assert [v.event for v in mem.history(a.id, user_id="alice")] == ["add"]


# -- retrieval sanity with the real default embedder ------------------------------------

DISTRACTORS = [
    "I had pasta for dinner last night",
    "The weather in Seattle has been rainy all week",
    "My sister just started a new job at the bank",
    "I'm reading a novel about the French revolution",
    "We should fix the leaking kitchen faucet",
    "My favourite band released a new album",
    "I need to renew my passport before summer",
    "The meeting with the accountant is on Thursday",
    "I started learning to play the guitar",
    "Traffic on the highway was terrible today",
]


@pytest.fixture(scope="module")
def real_mem(tmp_path_factory):
    memory = Memory(tmp_path_factory.mktemp("real") / "engram.db")  # default config: MiniLM ONNX
    yield memory
    memory.close()


def test_real_embedder_finds_the_pet(real_mem):
    turns_ = DISTRACTORS[:5] + ["I adopted a golden retriever named Max"] + DISTRACTORS[5:]
    real_mem.add(turns_, user_id="pet-owner")
    hits = real_mem.search("what pet do I have?", user_id="pet-owner", limit=3)
    assert hits[0].text == "I adopted a golden retriever named Max"
    assert real_mem.embedder.name == "all-MiniLM-L6-v2-int8"


def test_real_embedder_semantic_match_without_shared_words(real_mem):
    real_mem.add(DISTRACTORS + ["My flight to Tokyo departs on the 5th of March"], user_id="traveller")
    hits = real_mem.search("when is my trip to Japan?", user_id="traveller", limit=3)
    assert hits[0].text == "My flight to Tokyo departs on the 5th of March"
    assert all(h.text not in ("I adopted a golden retriever named Max",) for h in hits)


def test_a_closed_memory_refuses_calls_with_a_usage_error(tmp_path):
    from engramdb import Memory, UsageError
    from engramdb.providers.fake import FakeEmbedder

    mem = Memory(tmp_path / "closed.db", embedder=FakeEmbedder())
    mem.add("hello", user_id="u")
    mem.close()
    with pytest.raises(UsageError, match="closed"):
        mem.list(user_id="u")
    with Memory(tmp_path / "closed.db", embedder=FakeEmbedder()) as again:
        assert [r.text for r in again.list(user_id="u")] == ["hello"]
