"""The entity graph (graph.py, stores/graph_sql.py): its phrases, Personalized PageRank,
its edges written by distillation, and the derivation rule (an erased or changed memory
leaves the graph) on SQLite and PostgreSQL; cubes and migrations carry it."""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from pathlib import Path

import pytest

from engramdb import Config, Memory
from engramdb.demo import ingest, load_sample
from engramdb.graph import grams, graph_ranking, mentioned, personalized_pagerank, phrase_key, phrase_keys
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores.base import Mention
from engramdb.stores.transfer import copy_store
from engramdb.types import Scope, ScoredId
from test_derivation_rule import copy_sqlite

USER = "alice"
OFFLINE = Config(extractor="offline")


# -- phrases -------------------------------------------------------------------------------


def test_phrase_keys_are_one_node_for_one_phrase():
    assert phrase_key("Books") == phrase_key("the book") == phrase_key("book") == "book"
    assert phrase_key("my home country") == "home country"
    assert phrase_key("Caroline's") == "caroline"
    assert phrase_key("the") is None and phrase_key("yesterday") is None and phrase_key("2023") is None
    assert phrase_keys(["Sweden", "sweden", "the kids", "kid"]) == ("sweden", "kid")


def test_a_text_mentions_the_keys_it_says_as_words():
    assert mentioned("Caroline moved from her home countries.", ["home country", "sweden", "caroline"]) == \
        ("home country", "caroline")
    assert "art" not in grams("She started painting")  # whole words only
    assert "pottery class" in grams("I signed up for a pottery class")


# -- the walk ------------------------------------------------------------------------------


def test_pagerank_carries_a_seed_to_what_shares_a_rare_phrase_with_it():
    edges = {1: ("home country", "friend"), 2: ("home country", "sweden", "necklace"), 3: ("friend", "dog"),
             4: ("friend", "painting"), 5: ("friend",), 6: ("pottery",)}
    scores = personalized_pagerank(edges, {1: 1.0}, {})
    assert max(scores, key=scores.get) == 1
    # 2 shares the rare "home country" with the seed; 3-5 share "friend", which most rows say
    assert scores[2] > scores[3] > 0 and scores[2] > scores[5]
    assert scores[6] == 0  # nothing joins it to the seed


def test_the_walk_ranks_what_the_best_candidates_reach_not_the_candidates_themselves():
    edges = {10: ("sweden", "necklace"), 11: ("necklace", "grandma"), 12: ("grandma", "pottery"), 13: ("dog",),
             14: ()}
    order = [item.rowid for item in graph_ranking("Who gave her the necklace?", [ScoredId(10, 1.0)], edges)]
    assert order == [11, 12], "one hop before two; the seed and what nothing joins are left out"
    assert graph_ranking("anything", [ScoredId(1, 1.0)], {1: (), 2: ()}) == []


def test_a_memory_saying_many_phrases_does_not_outrank_one_sharing_the_seeds_rare_one():
    # 2 shares the seed's rare phrase alone; 3 (a long message) shares it too, and says
    # ten more phrases that only rows far from the seed repeat: it gathers a little mass
    # from each of them, and unnormalised it would come first.
    hub = tuple(f"topic {i}" for i in range(10))
    edges = {1: ("home country", "sweden"), 2: ("home country",), 3: ("home country", *hub),
             **{10 + i: (f"topic {i}",) for i in range(10)}}
    scores = personalized_pagerank(edges, {1: 1.0}, {})
    assert scores[3] > scores[2], "the degree bias the ranking corrects"
    order = [item.rowid for item in graph_ranking("Where is she from?", [ScoredId(1, 1.0)], edges)]
    assert order[:2] == [2, 3]


def test_what_shares_a_source_with_a_seed_is_not_a_hop():
    edges = {1: ("berlin", "move"), 2: ("berlin",), 3: ("berlin", "flat"), 4: ("flat",)}
    sources = {1: ["t1"], 2: ["t1"], 3: ["t2"], 4: ["t3"]}
    order = [item.rowid for item in graph_ranking("Where does she live?", [ScoredId(1, 1.0)], edges, sources=sources)]
    assert order == [3, 4], "2 is the seed's own turn said again: left to the other lists"


def test_query_phrases_can_seed_the_walk(monkeypatch):
    import engramdb.graph as graph

    edges = {10: ("sweden", "necklace"), 11: ("necklace", "grandma"), 12: ("pottery", "clay"), 13: ("clay",)}
    assert graph.query_phrases("Who gave her the necklace?", edges) == {"necklace": pytest.approx(math.log(3))}  # log(1 + 4 rows / 2 saying it)
    monkeypatch.setattr(graph, "PHRASE_SHARE", 0.5)
    order = [item.rowid for item in graph.graph_ranking("Who gave her the necklace?", [ScoredId(12, 1.0)], edges)]
    assert set(order) == {10, 11, 13}


# -- edges written by distillation ---------------------------------------------------------


@pytest.mark.distill
def test_distillation_writes_each_memorys_phrases_and_search_uses_them(tmp_path):
    with Memory(tmp_path / "g.db", embedder=FakeEmbedder(), config=OFFLINE.replace(graph_search=True)) as mem:
        mem.add([{"role": "user", "name": "Caroline", "content": "I moved here from my home country four years ago."},
                 {"role": "user", "name": "Melanie", "content": "I love pottery and painting with my kids."},
                 {"role": "user", "name": "Caroline",
                  "content": "My grandma in my home country, Sweden, gave me this necklace."}],
                user_id=USER, session_id="s1")
        assert mem.flush(60)
        records = mem.list(user_id=USER, limit=50)
        said = mem.store.mentions(USER, [r.id for r in records])
        turns = {r.text: r.id for r in records if r.kind == "turn"}
        assert {"home country", "sweden", "necklace"} <= set(said[turns[next(t for t in turns if "Sweden" in t)]])
        derived = [r for r in records if r.kind != "turn" and r.id in said]
        assert derived, "a derived memory keeps the phrases of its turns that it repeats"
        assert all(set(said[r.id]) <= {k for s in said.values() for k in s} for r in derived)
        assert mem.search("Where did Caroline move from?", user_id=USER, limit=10)


FILLER = ["The weather was grey all week.", "We cooked pasta for dinner on Friday.", "My car needs new tyres.",
          "I finished a puzzle of a lighthouse.", "The train was late again this morning.",
          "Work has been busy with the quarterly report.", "I watched a film about whales.",
          "Our neighbour plays the trumpet at night.", "The library opened a new wing.",
          "I bought a blue lamp for the desk."]


@pytest.mark.distill
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_turn_that_shares_a_rare_phrase_with_the_best_hit_climbs_with_the_graph(backend, tmp_path, request):
    path = tmp_path / "g.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        mem.add([{"role": "user", "name": "Caroline", "content": text} for text in
                 ["I moved here from my home country four years ago.", *FILLER,
                  "My grandma in my home country gave me this necklace."]], user_id=USER, session_id="s1")
        assert mem.flush(60)

    def rank(graph_search: bool) -> int:
        with Memory(path, embedder=FakeEmbedder(), config=Config(extractor="none", graph_search=graph_search,
                                                                 dense_feedback=False)) as m:  # the graph alone
            hits = m.search("Where did Caroline move from?", user_id=USER, limit=30)
        if not graph_search:  # the walk's seed: the best hit without the graph says "home country"
            assert "home country" in hits[0].text and "necklace" not in hits[0].text
        return next(i for i, h in enumerate(hits) if "necklace" in h.text)

    assert rank(True) < rank(False)


@pytest.mark.distill
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_updated_turn_gets_the_phrases_of_its_new_text(backend, tmp_path, request):
    path = tmp_path / "g.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        (turn,) = mem.add("My grandma in Sweden gave me this necklace.", user_id=USER).records
        assert mem.flush(60)
        assert "necklace" in mem.store.mentions(USER, [turn.id])[turn.id]
        mem.update(turn.id, "My uncle in Norway gave me this bracelet.")
        assert mem.flush(60)
        said = mem.store.mentions(USER, [r.id for r in mem.list(user_id=USER, limit=50)])
        phrases = {k for keys in said.values() for k in keys}
        assert "bracelet" in said[turn.id] and not {"necklace", "sweden", "grandma"} & phrases


@pytest.mark.distill
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_edited_derived_memory_keeps_the_phrases_of_its_turns_that_its_new_text_says(backend, tmp_path, request):
    path = tmp_path / "g.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        (turn,) = mem.add({"role": "user", "name": "Caroline",
                           "content": "Yesterday I bought a silver necklace in Sweden for my grandma."}, user_id=USER).records
        assert mem.flush(60)
        derived = [r for r in mem.list(user_id=USER, limit=50) if r.kind != "turn" and turn.id in
                   [dst for src, kind, dst in mem.store.memory_links(r.id) if kind == "derived_from"]]
        assert derived, "the offline extractor made a memory of the dated event"
        turn_phrases = set(mem.store.mentions(USER, [turn.id])[turn.id])
        assert {"sweden", "necklace"} <= turn_phrases
        memory = derived[0]
        mem.update(memory.id, "Caroline bought a necklace and a bracelet for her grandma.", user_id=USER)
        said = mem.store.mentions(USER, [memory.id])
        assert memory.id in said, "the edit left the memory out of the graph"
        assert "necklace" in said[memory.id] and set(said[memory.id]) <= turn_phrases
        assert "sweden" not in said[memory.id], "the new text no longer says it"
        assert "bracelet" not in said[memory.id], "a phrase no source turn says is no edge"


@pytest.mark.distill
def test_the_graph_can_be_switched_off(tmp_path):
    with Memory(tmp_path / "g.db", embedder=FakeEmbedder(), config=OFFLINE.replace(graph=False)) as mem:
        mem.add("I moved here from Sweden with my grandma.", user_id=USER)
        assert mem.flush(60)
        assert mem.store.graph_size(USER) == 0


def test_edges_are_written_only_for_the_text_they_were_read_from(tmp_path):
    with Memory(tmp_path / "g.db", embedder=FakeEmbedder()) as mem:
        (turn,) = mem.add("I moved here from Sweden.", user_id=USER).records
        mem.store.write_mentions(USER, [Mention(turn.id, "not-its-hash", ("sweden",))])
        assert mem.store.graph_size(USER) == 0
        from engramdb.keys import content_hash

        mem.store.write_mentions(USER, [Mention(turn.id, content_hash(turn.text), ("sweden",))])
        mem.store.write_mentions("bob", [Mention(turn.id, content_hash(turn.text), ("moved",))])  # not bob's
        assert mem.store.mentions(USER, [turn.id]) == {turn.id: ("sweden",)}
        mem.update(turn.id, "I moved here from Norway.", user_id=USER)
        assert mem.store.graph_size(USER) == 0, "a changed text's edges go with it"


# -- the derivation rule: an erased memory leaves the graph --------------------------------


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("graph-demo") / "engram.db"
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        ingest(mem, load_sample())
        assert mem.flush(120)
        assert mem.store.graph_size(USER) > 50
    return path


def _private_phrases(erased_text: str, surviving: list[str]) -> set[str]:
    """The erased memory's phrases that no surviving memory's text says."""
    said = set().union(*(grams(t) for t in surviving))
    return {k for k in grams(erased_text) if k not in said}


def _sqlite_graph(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [(record_id, phrase, user_id) for record_id, phrases, user_id in
                conn.execute("SELECT record_id, phrases, user_id FROM graph_mentions") for phrase in json.loads(phrases)]
    finally:
        conn.close()


@pytest.mark.distill
@pytest.mark.parametrize("source", ["s1-07", "s1-03", "s2-03", "s3-09"])
def test_an_erased_turn_leaves_the_graph_sqlite(demo_store, tmp_path, source):
    path = copy_sqlite(demo_store, tmp_path / "copy")
    with Memory(path, embedder=FakeEmbedder(), config=Config(extractor="none")) as mem:
        records = mem.list(user_id=USER, limit=1000, include_retired=True)
        (turn,) = [r for r in records if r.kind == "turn" and r.sources == [source]]
        had = mem.store.mentions(USER, [turn.id])[turn.id]
        mem.delete(turn.id)
        left = [r for r in mem.list(user_id=USER, limit=1000, include_retired=True)]
    rows = _sqlite_graph(path)
    assert had and rows
    ids = {r[0] for r in rows}
    assert turn.id not in ids
    assert ids <= {r.id for r in left}, "every edge is of a memory that exists"
    private = _private_phrases(turn.text, [r.text for r in left])
    assert not private & {r[1] for r in rows}, "a phrase only the erased turn said is still in the graph"


@pytest.mark.distill
def test_forgetting_the_user_empties_their_graph(demo_store, tmp_path):
    path = copy_sqlite(demo_store, tmp_path / "copy")
    with Memory(path, embedder=FakeEmbedder(), config=Config(extractor="none")) as mem:
        mem.forget(user_id=USER)
    assert _sqlite_graph(path) == []


@pytest.mark.distill
@pytest.mark.parametrize("source", ["s1-07", "s2-03"])
def test_an_erased_turn_leaves_the_graph_postgresql(demo_store, postgres_url, tmp_path, source):
    from engramdb.stores.postgres import PostgresStore
    from engramdb.stores.sqlite import SQLiteStore

    schema = f"g_{uuid.uuid4().hex[:12]}"
    sqlite_store = SQLiteStore(copy_sqlite(demo_store, tmp_path / "copy"))
    target = PostgresStore(postgres_url, schema=schema)
    try:
        copy_store(sqlite_store, target)  # `engram migrate` carries the graph
        expected = sqlite_store.graph_size(USER)
    finally:
        sqlite_store.close()
    try:
        assert target.graph_size(USER) == expected > 0
        records = [item.record for item in target.export(Scope(USER))]
        (turn,) = [r for r in records if r.kind == "turn" and r.sources == [source]]
        assert target.mentions(USER, [turn.id])
        assert target.delete(turn.id, at="2025-01-01T00:00:00.000000Z", actor="test")
        left = [item.record for item in target.export(Scope(USER))]
        with target._connection() as conn:
            rows = [(record_id, phrase) for record_id, phrases in
                    conn.execute(f'SELECT record_id, phrases FROM "{schema}".graph_mentions') for phrase in json.loads(phrases)]
        ids = {r[0] for r in rows}
        assert rows and turn.id not in ids and ids <= {r.id for r in left}
        private = _private_phrases(turn.text, [r.text for r in left])
        assert not private & {r[1] for r in rows}
    finally:
        target.close()


# -- cubes -------------------------------------------------------------------------------


@pytest.mark.distill
def test_a_cube_carries_the_graph_into_another_scope(demo_store, tmp_path):
    path = copy_sqlite(demo_store, tmp_path / "copy")
    cube = tmp_path / "alice.jsonl"
    with Memory(path, embedder=FakeEmbedder(), config=Config(extractor="none")) as mem:
        mem.export(cube, user_id=USER)
        before = mem.store.graph_size(USER)
        by_text = {}
        for r in mem.list(user_id=USER, limit=1000):
            by_text.setdefault(r.text, set()).update(mem.store.mentions(USER, [r.id]).get(r.id, ()))
    with Memory(tmp_path / "other.db", embedder=FakeEmbedder(), config=Config(extractor="none")) as other:
        other.import_(cube, user_id="carol")
        assert other.store.graph_size("carol") == before
        moved = other.list(user_id="carol", limit=1000)
        said = other.store.mentions("carol", [r.id for r in moved])
        assert all(set(said.get(r.id, ())) == by_text[r.text] for r in moved)


# -- the backfill: a store distilled without the graph gets its edges (lifecycle/graph_lane.py) ----


def _emptied_copy(demo_store: Path, target: Path) -> Path:
    """A copy of the demo store as distilled before migration 0010: no edges, no watermark."""
    path = copy_sqlite(demo_store, target)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM graph_mentions")
        conn.execute("DELETE FROM meta WHERE key = 'graph_rowid'")
    conn.close()
    return path


def _by_id(rows: list[tuple[str, str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for record_id, phrase, _ in rows:
        out.setdefault(record_id, set()).add(phrase)
    return out


@pytest.mark.distill
def test_a_store_without_edges_gets_those_distillation_gives_once_flush_returns(demo_store, tmp_path):
    path = _emptied_copy(demo_store, tmp_path / "copy")
    assert _sqlite_graph(path) == []
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        assert mem.flush(120)
        assert mem.jobs()["runs"][-1]["capability"] == "graph"
    assert _by_id(_sqlite_graph(path)) == _by_id(_sqlite_graph(demo_store))


@pytest.mark.distill
def test_a_store_distilled_with_the_graph_off_gets_the_same_edges(demo_store, tmp_path):
    path = tmp_path / "off.db"
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE.replace(graph=False)) as mem:
        ingest(mem, load_sample())
        assert mem.flush(120)
        assert mem.store.graph_size(USER) == 0, "Config.graph=False: no edges, backfilled or distilled"
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        assert mem.flush(120)

    def edges(db: Path) -> list[tuple[str, str, tuple[str, ...]]]:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return sorted((kind, text, tuple(sorted(json.loads(phrases)))) for kind, text, phrases in conn.execute(
                "SELECT r.kind, r.text, g.phrases FROM graph_mentions g JOIN records r ON r.id = g.record_id"))
        finally:
            conn.close()

    assert len(edges(demo_store)) > 20
    assert edges(path) == edges(demo_store)


@pytest.mark.distill
def test_the_backfill_is_bounded_per_round_and_resumes_after_a_crash(demo_store, tmp_path):
    from engramdb.clock import SystemClock
    from engramdb.extract import make_extractor
    from engramdb.lifecycle.graph_lane import GraphLane
    from engramdb.stores.sqlite import SQLiteStore

    path = _emptied_copy(demo_store, tmp_path / "copy")
    store = SQLiteStore(path)
    try:
        lane = GraphLane(store, make_extractor("offline"), SystemClock(), batch=5)
        job = lane.claim()
        assert job is not None and len(job.record_ids) == 5
        lane.run(job)  # one round, then the process dies (no stop, no close of the lane)
        first = _by_id(_sqlite_graph(path))
        assert first and set(first) <= set(_by_id(_sqlite_graph(demo_store)))
        mark = int(sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'graph_rowid'").fetchone()[0])
        assert mark > 0
    finally:
        store.close()
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        assert mem.flush(120)
    assert _by_id(_sqlite_graph(path)) == _by_id(_sqlite_graph(demo_store))


@pytest.mark.distill
def test_the_backfill_is_off_with_the_graph(demo_store, tmp_path):
    path = _emptied_copy(demo_store, tmp_path / "copy")
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE.replace(graph=False)) as mem:
        assert mem.flush(120)
        assert mem._graph_lane is None
    assert _sqlite_graph(path) == []


@pytest.mark.distill
@pytest.mark.parametrize("source", ["s1-07", "s2-03"])
def test_an_erased_turn_gets_no_edges_from_the_backfill_sqlite(demo_store, tmp_path, source):
    path = _emptied_copy(demo_store, tmp_path / "copy")
    with Memory(path, embedder=FakeEmbedder(), config=Config(extractor="none")) as mem:
        turn = next(r for r in mem.list(user_id=USER, limit=1000, include_retired=True)
                    if r.kind == "turn" and r.sources == [source])
        mem.delete(turn.id)
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        assert mem.flush(120)
        left = mem.list(user_id=USER, limit=1000, include_retired=True)
    rows = _sqlite_graph(path)
    ids = {r[0] for r in rows}
    assert rows and turn.id not in ids and ids <= {r.id for r in left}
    private = _private_phrases(turn.text, [r.text for r in left])
    assert private and not private & {r[1] for r in rows}


@pytest.mark.distill
@pytest.mark.parametrize("source", ["s1-07"])
def test_an_erased_turn_gets_no_edges_from_the_backfill_postgresql(demo_store, pg_url, tmp_path, source):
    import psycopg

    from engramdb.stores.postgres import DEFAULT_SCHEMA, PostgresStore
    from engramdb.stores.sqlite import SQLiteStore

    sqlite_store = SQLiteStore(_emptied_copy(demo_store, tmp_path / "copy"))
    target = PostgresStore(pg_url)
    try:
        copy_store(sqlite_store, target)
    finally:
        sqlite_store.close()
        target.close()
    with Memory(pg_url, embedder=FakeEmbedder(), config=Config(extractor="none")) as mem:
        assert mem.store.graph_size(USER) == 0
        turn = next(r for r in mem.list(user_id=USER, limit=1000, include_retired=True)
                    if r.kind == "turn" and r.sources == [source])
        mem.delete(turn.id)
    with Memory(pg_url, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        assert mem.flush(120)
        left = mem.list(user_id=USER, limit=1000, include_retired=True)
    with psycopg.connect(pg_url) as conn:
        rows = [(record_id, phrase) for record_id, phrases in
                conn.execute(f'SELECT record_id, phrases FROM "{DEFAULT_SCHEMA}".graph_mentions')
                for phrase in (phrases if isinstance(phrases, list) else json.loads(phrases))]
    ids = {r[0] for r in rows}
    assert len(rows) > 50 and turn.id not in ids and ids <= {r.id for r in left}
    private = _private_phrases(turn.text, [r.text for r in left])
    assert private and not private & {r[1] for r in rows}


@pytest.mark.distill
def test_the_backfill_takes_every_user_in_turn_and_only_their_own_memories(tmp_path):
    path = tmp_path / "two.db"
    said = {"alice": "My grandma in Sweden gave me this necklace.", "bob": "I adopted a parrot named Kiwi in Lima."}
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE.replace(graph=False)) as mem:
        for turn in range(3):
            for user, text in said.items():
                mem.add(f"{text} ({turn})", user_id=user)
        assert mem.flush(60)
        assert mem.store.graph_size("alice") == mem.store.graph_size("bob") == 0
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        assert mem.flush(60)
        for user in said:
            records = mem.list(user_id=user, limit=50)
            edges = mem.store.mentions(user, [r.id for r in records])
            assert {r.id for r in records if r.kind == "turn"} <= set(edges)
            phrases = {k for keys in edges.values() for k in keys}
            assert ("necklace" in phrases) == (user == "alice") and ("parrot" in phrases) == (user == "bob")
        assert {r[2] for r in _sqlite_graph(path)} == {"alice", "bob"}
        for user in said:  # an edge row's user is its memory's
            ids = sorted({row[0] for row in _sqlite_graph(path) if row[2] == user})
            assert len(mem.store.records_by_ids(ids, user)) == len(ids)


@pytest.mark.distill
def test_the_backfill_gives_no_edges_to_a_turn_whose_distillation_was_parked(tmp_path):
    path = tmp_path / "parked.db"
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE.replace(graph=False)) as mem:
        parked, kept = mem.add(["My grandma in Sweden gave me this necklace.", "I adopted a parrot in Lima."],
                               user_id=USER).records
        assert mem.flush(60)
    conn = sqlite3.connect(path)
    with conn:  # as a job that kept failing leaves it (distill.MAX_ATTEMPTS): never distilled
        conn.execute("INSERT INTO jobs (user_id, record_ids, state, attempts, error, not_before, created_at, updated_at) "
                     "VALUES (?, ?, 'failed', 5, 'provider: down', '2024-01-01', '2024-01-01', '2024-01-01')",
                     (USER, json.dumps([parked.id])))
    conn.close()
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        assert mem.flush(60)
        edges = mem.store.mentions(USER, [parked.id, kept.id])
    assert parked.id not in edges and "parrot" in edges[kept.id]


# -- a turn that says no phrase is read once (an empty row), and a changed turn again ------


SAID = ["I adopted a parrot named Kiwi in Lima.", "Yes.", "Haha, right?", "Wow, that is so cool!",
        "My grandma in Sweden gave me this necklace."]


def _graph_runs(mem: Memory) -> int:
    return sum(1 for run in mem.jobs()["runs"] if run["capability"] == "graph")


@pytest.mark.distill
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_turn_without_phrases_is_read_once_and_the_next_open_extracts_nothing(backend, tmp_path, request):
    path = tmp_path / "g.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE.replace(graph=False)) as mem:
        before = mem.add(SAID[:3], user_id=USER).records
        assert mem.flush(60)
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:  # the backfill reads the first three
        assert mem.flush(60) and _graph_runs(mem) == 1
        after = mem.add(SAID[3:], user_id=USER).records  # distilled with the graph on
        assert mem.flush(60) and _graph_runs(mem) == 1, "distillation wrote their rows: nothing to backfill"
        said = mem.store.mentions(USER, [r.id for r in before + after])
    assert said[before[1].id] == said[before[2].id] == said[after[0].id] == (), "read, says no phrase: an empty row"
    assert {"parrot", "lima"} <= set(said[before[0].id]) and "necklace" in said[after[1].id]
    for _ in range(2):
        with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
            assert mem.flush(60)
            assert mem._graph_lane is None and _graph_runs(mem) == 0, "the next open extracts nothing"


@pytest.mark.distill
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_turn_changed_while_the_graph_was_off_is_read_again_from_its_new_text(backend, tmp_path, request):
    path = tmp_path / "g.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        first, quiet, last = mem.add([SAID[0], SAID[1], SAID[4]], user_id=USER).records
        assert mem.flush(60)
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE.replace(graph=False)) as mem:
        mem.update(first.id, "My uncle in Norway gave me a bracelet.")  # its row goes; re-derived with no graph
        mem.update(quiet.id, "I took up pottery in Kyoto.")
        assert mem.flush(60)
        assert set(mem.store.mentions(USER, [first.id, quiet.id, last.id])) == {last.id}
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        assert mem.flush(60) and _graph_runs(mem) == 1
        said = mem.store.mentions(USER, [r.id for r in mem.list(user_id=USER, limit=50)])
    assert {"norway", "bracelet"} <= set(said[first.id]) and {"pottery", "kyoto"} <= set(said[quiet.id])
    assert not {"parrot", "lima", "kiwi"} & {k for keys in said.values() for k in keys}, "nothing of the old text"
    assert "necklace" in said[last.id]
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        assert mem.flush(60) and mem._graph_lane is None


def test_turns_distilled_by_an_llm_are_not_sent_to_it_again_by_the_backfill(tmp_path):
    """The LLM extractor notes no phrases: its turns get empty rows, not a second call each."""
    from http_stub import chat_completion, json_server

    asked: list[str] = []

    def respond(path: str, body: dict) -> tuple[int, object]:
        if body["messages"][0]["content"].startswith("You distil conversation turns"):
            asked.append(body["messages"][-1]["content"])
        return 200, chat_completion(json.dumps({"memories": []}))

    with json_server(respond) as url:
        config = Config(extractor="llm:scripted", llm_base_url=url, notes=False, thoughts=False)
        with Memory(tmp_path / "llm.db", embedder=FakeEmbedder(), config=config) as mem:
            (turn,) = mem.add("I adopted a parrot named Kiwi in Lima.", user_id=USER).records
            assert mem.flush(30)
            assert mem.store.mentions(USER, [turn.id]) == {turn.id: ()}
        with Memory(tmp_path / "llm.db", embedder=FakeEmbedder(), config=config) as mem:
            assert mem.flush(30) and mem._graph_lane is None
    assert len(asked) == 1 and "Kiwi" in asked[0]
