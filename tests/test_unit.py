"""Pure logic: message normalisation, filters, fusion, context assembly, time, ids, FTS queries."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from engramdb import InvalidInputError
from engramdb.clock import format_ts, normalize_ts, parse_ts
from engramdb.block import Layout, item, render
from engramdb.ids import PREFIX, new_id
from engramdb.messages import normalize
from engramdb.retrieval import MIN_BUDGET_TOKENS, PREAMBLE, assemble, estimate_tokens, rrf
from engramdb.stores.filters import Condition, parse, to_sql
from engramdb.stores.sqlite import fts_query
from engramdb.types import Hit, Message, ScoredId

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)


def norm(messages, **kw):
    return normalize(messages, now=NOW, max_chars=kw.get("max_chars", 1000), max_messages=kw.get("max_messages", 10))


# -- messages.normalize -----------------------------------------------------------------


def test_normalize_shapes():
    assert norm("hi") == [Message("user", "hi", "2024-06-01T12:00:00.000000Z")]
    assert norm({"role": "assistant", "content": "yo"})[0].role == "assistant"
    out = norm(("a", {"content": "b", "id": "7", "name": "Ann", "timestamp": "2024-01-01T00:00:00+01:00"}))
    assert [m.content for m in out] == ["a", "b"]
    assert out[1].source_id == "7" and out[1].name == "Ann"
    assert out[1].timestamp == "2023-12-31T23:00:00.000000Z"
    assert out[0].source_id is None and out[0].timestamp == format_ts(NOW)
    assert norm({"content": "t", "timestamp": datetime(2024, 2, 3)})[0].timestamp == "2024-02-03T00:00:00.000000Z"


def test_normalize_keeps_content_verbatim():
    assert norm("  padded\ttext \n")[0].content == "  padded\ttext \n"
    assert norm("emoji 🐝 and ünïcode")[0].content == "emoji 🐝 and ünïcode"


@pytest.mark.parametrize("role", ["user", "assistant", "system", "tool", "event"])
def test_normalize_roles(role):
    assert norm({"role": role, "content": "x"})[0].role == role


def test_normalize_limits():
    assert len(norm("x" * 1000)) == 1
    with pytest.raises(InvalidInputError, match="limit is 1000"):
        norm("x" * 1001)
    assert len(norm(["x"] * 10)) == 10
    with pytest.raises(InvalidInputError, match="at most 10"):
        norm(["x"] * 11)


@pytest.mark.parametrize(
    "bad, match",
    [
        (3, "messages must be"),
        ({"content": "x", "extra": 1}, "unknown keys"),
        ([{"content": "x"}, {"content": None}], r"messages\[1\]\.content"),
        ({"content": "x", "timestamp": "noon"}, "ISO 8601"),
        ([{"id": "a", "content": "x"}, {"id": "a", "content": "y"}], "appears twice"),
        ({"content": "x", "id": 1.5}, "must be a string"),
        ({"content": "x", "id": 7}, r"messages\[0\]\.id must be a string, got int"),
        ({"content": "x", "name": " "}, r"messages\[0\]\.name must not be empty"),
        ({"content": "x", "name": "n" * 257}, "is 257 characters long; the limit is 256"),
    ],
)
def test_normalize_errors_name_the_field(bad, match):
    with pytest.raises(InvalidInputError, match=match):
        norm(bad)


# -- filters.parse / to_sql -------------------------------------------------------------


def test_parse_filters():
    assert parse(None) == [] and parse({}) == []
    assert parse({"kind": "turn"}) == [Condition("kind", "eq", "turn")]
    assert parse({"role": {"in": ("user", "tool")}}) == [Condition("role", "in", ["user", "tool"])]
    assert parse({"created_at": {"gte": "2024-01-01", "lt": "2024-02-01T00:00:00+01:00"}}) == [
        Condition("created_at", "gte", "2024-01-01T00:00:00.000000Z"),
        Condition("created_at", "lt", "2024-01-31T23:00:00.000000Z"),
    ]
    assert parse({"metadata.topic-1": 5}) == [Condition("metadata.topic-1", "eq", 5)]
    assert parse({"valid_to": None}) == [Condition("valid_to", "eq", None)]
    assert parse({"source": "m1"}) == [Condition("source", "eq", "m1")]


@pytest.fixture
def db():
    """A real (in-memory) SQLite table shaped like `records`, to run compiled filters on."""
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE records (rowid INTEGER PRIMARY KEY, id TEXT, kind TEXT, role TEXT, name TEXT, session_id TEXT, "
        "agent_id TEXT, created_at TEXT, valid_to TEXT, sources TEXT, metadata TEXT)"
    )
    rows = [
        ("r1", "turn", "user", None, "s1", None, "2024-01-05T00:00:00.000000Z", None, '["a"]', '{"topic": "x", "n": 1}'),
        ("r2", "turn", "assistant", "Bo", "s1", "bot", "2024-02-05T00:00:00.000000Z", None, '["b", "c"]', '{"n": 2}'),
        ("r3", "fact", None, None, None, None, "2024-03-05T00:00:00.000000Z", "2024-04-01T00:00:00.000000Z",
         '["c"]', '{"topic": "y"}'),
    ]
    conn.executemany(
        "INSERT INTO records (id, kind, role, name, session_id, agent_id, created_at, valid_to, sources, metadata) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    yield conn
    conn.close()


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"kind": "turn"}, ["r1", "r2"]),
        ({"kind": {"ne": "turn"}}, ["r3"]),
        ({"role": {"in": ["user", "assistant"]}}, ["r1", "r2"]),
        ({"role": {"nin": ["user"]}}, ["r2"]),  # SQL: NULL is neither in nor out
        ({"role": None}, ["r3"]),
        ({"role": {"ne": None}}, ["r1", "r2"]),
        ({"created_at": {"gte": "2024-02-01", "lt": "2024-03-01"}}, ["r2"]),
        ({"created_at": {"gt": "2024-02-05T00:00:00Z"}}, ["r3"]),
        ({"created_at": {"lte": "2024-02-05T00:00:00Z"}}, ["r1", "r2"]),
        ({"valid_to": {"lt": "2025-01-01"}}, ["r3"]),
        ({"metadata.topic": "x"}, ["r1"]),
        ({"metadata.n": {"gte": 2}}, ["r2"]),
        ({"source": "c"}, ["r2", "r3"]),
        ({"source": "c", "kind": "fact"}, ["r3"]),
        ({"session_id": "s1", "agent_id": "bot"}, ["r2"]),
        ({"name": "Bo"}, ["r2"]),
        ({"id": {"in": ["r1", "r3"]}}, ["r1", "r3"]),
    ],
)
def test_to_sql_selects_the_right_rows(db, filters, expected):
    where, params = to_sql(parse(filters))
    rows = db.execute(f"SELECT r.id FROM records r WHERE {where} ORDER BY r.id", params).fetchall()
    assert [r[0] for r in rows] == expected


def test_to_sql_is_parameterised():
    where, params = to_sql(parse({"kind": "x' OR 1=1 --", "metadata.k": "v"}), alias="t")
    assert "x' OR" not in where and "t.kind = ?" in where
    assert params == ["x' OR 1=1 --", "$.k", "v"]
    assert to_sql([]) == ("", [])


# -- retrieval.rrf ----------------------------------------------------------------------


def test_rrf_fuses_by_rank():
    dense = [ScoredId(1, 0.9), ScoredId(2, 0.8), ScoredId(3, 0.1)]
    keyword = [ScoredId(3, 12.0), ScoredId(1, 5.0)]
    fused = rrf([dense, keyword], k=60)
    assert [s.rowid for s in fused] == [1, 3, 2]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1].score == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2].score == pytest.approx(1 / 62)


def test_rrf_edge_cases():
    assert rrf([]) == [] and rrf([[], []]) == []
    # ties break by rowid, deterministically
    assert [s.rowid for s in rrf([[ScoredId(9, 1.0)], [ScoredId(4, 1.0)]])] == [4, 9]
    # raw scores do not matter, only ranks
    a = rrf([[ScoredId(1, 1000.0), ScoredId(2, 0.0)]])
    b = rrf([[ScoredId(1, 0.2), ScoredId(2, 0.1)]])
    assert a == b
    assert rrf([[ScoredId(1, 1.0)]], k=1)[0].score == pytest.approx(0.5)


# -- retrieval.assemble -----------------------------------------------------------------


def hit(text, session, at, role="user", name=None, score=1.0):
    return Hit(id=text, text=text, kind="turn", score=score, sources=[text], session_id=session,
               created_at=at, valid_to=None, role=role, name=name)


def test_assemble_shows_the_hits_in_the_order_given_each_dated_by_its_day():
    hits = [
        hit("late in B", "B", "2024-03-02T10:00:00.000000Z"),
        hit("early in A", "A", "2024-01-01T09:30:00.000000Z", name="Ann"),
        hit("loose", None, "2024-02-01T00:00:00.000000Z", role=None),
        hit("early in B", "B", "2024-03-01T08:00:00.000000Z", role="assistant"),
    ]
    block, chosen, complete = assemble(hits, 1000)
    assert [h.text for h in chosen] == [h.text for h in hits] and complete  # best first, as given
    assert block == (
        f"{PREAMBLE}\n"
        "- [2 March 2024] user: late in B\n"
        "- [1 January 2024] Ann: early in A\n"
        "- [1 February 2024] turn: loose\n"
        "- [1 March 2024] assistant: early in B"
    )
    # given in time order (a whole scope), the lines are in time order
    timed = assemble(sorted(hits, key=lambda h: h.created_at), 1000).text
    assert timed.index("early in A") < timed.index("loose") < timed.index("early in B") < timed.index("late in B")
    # a memory whose time is not known has no date
    undated = Hit(id="e", text="Ann moved in May", kind="event", score=1.0, sources=["x"], session_id="A",
                  created_at="2024-05-01T00:00:00.000000Z", valid_to=None, metadata={"when": "2024-05"})
    assert assemble([undated], 1000).text == f"{PREAMBLE}\n- event: Ann moved in May"


def test_assemble_dedups_and_respects_budget():
    hits = [
        hit("The same thing", "A", "2024-01-01T00:00:00.000000Z"),
        hit("the  SAME thing", "A", "2024-01-02T00:00:00.000000Z"),
        hit("x" * 400, "A", "2024-01-03T00:00:00.000000Z"),  # too big for the budget: cut
        hit("short one", "A", "2024-01-04T00:00:00.000000Z"),
    ]
    block, chosen, complete = assemble(hits, 80)
    assert block.count("same thing") + block.count("SAME thing") == 1
    # too long for what is left: cut ("…"), and it takes that room, before a lower-ranked hit
    assert "x" * 400 not in block and "x" * 100 + "…" in block and "short one" not in block and not complete
    assert [h.text for h in chosen] == ["The same thing", "x" * 400]
    assert chosen[0].sources == ["The same thing", "the  SAME thing"]  # the repeat's source is kept
    assert estimate_tokens(block) <= 80
    block, chosen, complete = assemble(hits, 50)  # too little left to be worth a cut: the next one fits
    assert [h.text for h in chosen] == ["The same thing", "short one"] and "x" not in block.split("\n", 1)[1]
    block, chosen, complete = assemble(hits, 200)
    assert "x" * 400 in block and len(chosen) == 3 and complete
    for budget in range(MIN_BUDGET_TOKENS, 200, 7):
        text, shown, _ = assemble(hits, budget)
        assert estimate_tokens(text) <= budget and shown
    assert assemble([], 100) == ("", [], True)
    assert assemble(hits, 1) == ("", [], False)


def test_assemble_leaves_out_a_derived_memory_its_turns_already_say():
    turn = hit("I moved to Lisbon in May", "A", "2024-03-04T10:00:00.000000Z")
    event = Hit(id="e", text="Ann moved to Lisbon in May 2024", kind="event", score=1.0, sources=[turn.id],
                session_id="A", created_at="2024-05-01T00:00:00.000000Z", valid_to=None,
                metadata={"when": "2024-05", "said_at": turn.created_at})
    other = replace(event, id="o", text="Ann likes Lisbon", sources=[turn.id, "elsewhere"])
    for order in ([event, turn, other], [turn, event, other]):  # ranked before its turn, or after
        block, chosen, complete = assemble(order, 1000)
        assert [h.id for h in chosen] == [turn.id, other.id] and complete
        assert "2024-05" not in block and block.split("\n")[1] == \
            "- [4 March 2024] user: I moved to Lisbon in May (May 2023)"  # the turn's own words, its date glossed


def test_layout_measures_what_render_writes():
    import random

    rng = random.Random(7)
    for _ in range(200):
        layout, items = Layout(), []
        for i in range(rng.randint(1, 20)):
            h = Hit(id=str(i), text="x" * rng.randint(1, 40), kind=rng.choice(["turn", "turn", "event"]), score=1.0,
                    sources=[str(i)], session_id=rng.choice([None, "a", "b", "c d"]),
                    created_at=f"2024-03-0{rng.randint(1, 5)}T{rng.choice(['00', '09'])}:{rng.choice(['00', '30'])}Z",
                    valid_to=None, role=rng.choice(["user", "assistant", None]), name=rng.choice([None, "Ann"]),
                    metadata=rng.choice([{}, {"when": "2024-05"}]))
            entry = item(h)
            assert layout.length_with(entry) == len(render(items + [entry]))
            layout.add(entry)
            items.append(entry)
            if rng.random() < 0.25:
                gone = items.pop(rng.randrange(len(items)))
                layout.remove(gone)
            assert layout.length == len(render(items))


def test_estimate_tokens():
    assert estimate_tokens("") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


# -- clock ------------------------------------------------------------------------------


def test_format_ts_is_fixed_width_utc():
    assert format_ts(datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2024-01-02T03:04:05.000000Z"
    assert format_ts(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05.000000Z"  # naive = UTC
    plus2 = timezone(timedelta(hours=2))
    assert format_ts(datetime(2024, 1, 2, 1, 0, tzinfo=plus2)) == "2024-01-01T23:00:00.000000Z"


def test_text_order_is_time_order():
    moments = [NOW + timedelta(microseconds=7 ** i) for i in range(12)] + [datetime(1999, 12, 31, tzinfo=timezone.utc)]
    assert sorted(format_ts(m) for m in moments) == [format_ts(m) for m in sorted(moments)]
    assert len({len(format_ts(m)) for m in moments}) == 1


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-06-01T12:00:00Z", "2024-06-01T12:00:00.000000Z"),
        ("2024-06-01T12:00:00z", "2024-06-01T12:00:00.000000Z"),
        ("2024-06-01 12:00:00.5", "2024-06-01T12:00:00.500000Z"),
        ("2024-06-01", "2024-06-01T00:00:00.000000Z"),
        ("2024-06-01T14:00:00+02:00", "2024-06-01T12:00:00.000000Z"),
        ("  2024-06-01T12:00:00-05:30 ", "2024-06-01T17:30:00.000000Z"),
        (datetime(2024, 6, 1, 12, tzinfo=timezone.utc), "2024-06-01T12:00:00.000000Z"),
    ],
)
def test_parse_ts(value, expected):
    assert normalize_ts(value) == expected
    assert parse_ts(value).tzinfo is not None


@pytest.mark.parametrize("value", ["", "   ", "tomorrow", "2024-02-30", "12:00", None, 1717243200, 3.5, b"2024"])
def test_parse_ts_rejects(value):
    with pytest.raises(InvalidInputError, match="when"):
        parse_ts(value, field="when")


# -- ids --------------------------------------------------------------------------------


def test_new_id_unique_prefixed_and_time_ordered():
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert all(i.startswith(PREFIX) and len(i) == len(PREFIX) + 32 for i in ids)
    assert all(int(i[len(PREFIX):], 16) >= 0 for i in ids)
    first = new_id()
    time.sleep(0.003)
    second = new_id()
    assert first < second
    millis = int(second[len(PREFIX):len(PREFIX) + 12], 16)
    assert abs(millis - time.time() * 1000) < 5000


# -- fts_query --------------------------------------------------------------------------


def test_fts_query():
    assert fts_query("What is my dog's name?") == '"dog" OR "s" OR "name"'
    assert fts_query("the the THE") == '"the"'  # all stopwords: keep them rather than nothing
    assert fts_query("Berlin berlin BERLIN") == '"berlin"'
    assert fts_query("?!. ...") is None
    assert fts_query("") is None
    assert fts_query("café Zürich") == '"café" OR "zürich"'
    assert fts_query('say "hi" OR NEAR(x)') == '"say" OR "hi" OR "near" OR "x"'
    many = fts_query(" ".join(f"w{i}" for i in range(100)))
    assert many.count(" OR ") == 63


def test_fts_query_runs_on_real_fts5():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5 (text, tokenize = 'porter unicode61 remove_diacritics 2')")
    conn.executemany("INSERT INTO t (text) VALUES (?)", [("my dog is named Rex",), ("cats are nice",)])
    def run(query):
        return conn.execute("SELECT text FROM t WHERE t MATCH ?", (fts_query(query),)).fetchall()

    for query in ('what "is" AND my dog?', "Dogs", "NEAR(dog) * ^ -rex"):
        assert run(query) == [("my dog is named Rex",)]
    assert run("AND OR NOT ( ) * ^ :") == []  # FTS5 syntax in a query is only words
    assert run("nice cat") == [("cats are nice",)]
    conn.close()
