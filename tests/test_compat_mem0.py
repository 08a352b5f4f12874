"""The mem0 facade (engramdb.compat.mem0) run with the examples of mem0's own docs
(its Python quickstart, current and v0.x): the same calls, the same shapes back."""

from __future__ import annotations

import asyncio

import pytest

from engramdb import Config
from engramdb.compat.mem0 import AsyncMemory, Memory
from engramdb.errors import ConfigError, InvalidInputError, NotFoundError
from engramdb.providers.fake import FakeEmbedder

# mem0's quickstart (docs.mem0.ai/open-source/python-quickstart)
ALEX = [
    {"role": "user", "content": "Hi, I'm Alex. I love basketball and gaming."},
    {"role": "assistant", "content": "Hey Alex! I'll remember your interests."},
]
# mem0's v0.x quickstart (docs.mem0.ai/v0x/open-source/python-quickstart)
MOVIES = [
    {"role": "user", "content": "I'm planning to watch a movie tonight. Any recommendations?"},
    {"role": "assistant", "content": "How about a thriller movies? They can be quite engaging."},
    {"role": "user", "content": "I'm not a big fan of thriller movies but I love sci-fi movies."},
    {"role": "assistant", "content": "Got it! I'll avoid thriller recommendations and suggest sci-fi movies in the future."},
]
ITEM_KEYS = {"id", "memory", "hash", "metadata", "created_at", "updated_at", "user_id", "agent_id", "run_id"}


@pytest.fixture
def m(tmp_path):
    memory = Memory(tmp_path / "mem0.db", embedder=FakeEmbedder())
    yield memory
    memory.close()


def test_the_quickstart_add_and_search_with_filters(m):
    added = m.add(ALEX, user_id="alex")
    assert [r["memory"] for r in added["results"]] == [t["content"] for t in ALEX]
    assert all(r["event"] == "ADD" and ITEM_KEYS <= r.keys() for r in added["results"])
    results = m.search("What do you know about me?", filters={"user_id": "alex"})
    assert set(results) == {"results"} and results["results"]
    top = m.search("Does Alex like basketball?", filters={"user_id": "alex"})["results"][0]
    assert top["memory"] == ALEX[0]["content"] and top["user_id"] == "alex" and top["score"] > 0
    assert m.search("basketball", user_id="someone-else")["results"] == []


def test_the_v0x_quickstart_end_to_end(m):
    result = m.add(MOVIES, user_id="alice", metadata={"category": "movie_recommendations"})
    assert len(result["results"]) == 4
    result = m.add(MOVIES, user_id="alice", agent_id="movie-assistant", run_id="session-001",
                   metadata={"category": "movie_recommendations"})
    assert {(r["agent_id"], r["run_id"]) for r in result["results"]} == {("movie-assistant", "session-001")}
    raw = m.add(MOVIES, user_id="alice", metadata={"category": "movie_recommendations"}, infer=False)
    assert [r["memory"] for r in raw["results"]] == [t["content"] for t in MOVIES]

    all_memories = m.get_all(user_id="alice")
    assert len(all_memories["results"]) == 12
    assert len(m.get_all(user_id="alice", run_id="session-001")["results"]) == 4
    assert len(m.get_all(user_id="alice", limit=5)["results"]) == 5
    memory_id = all_memories["results"][2]["id"]
    specific_memory = m.get(memory_id)
    assert specific_memory["memory"] == MOVIES[2]["content"]
    assert specific_memory["metadata"] == {"category": "movie_recommendations"}
    assert m.get("892db2ae-06d9-49e5-8b3e-585ef9b85b8e") is None  # mem0's example id: not found

    related = m.search(query="What do you know about me?", user_id="alice")
    assert related["results"] and all(r["user_id"] == "alice" for r in related["results"])
    assert len(m.search("sci-fi movies", user_id="alice", limit=2)["results"]) == 2
    filtered = m.search("sci-fi", user_id="alice", filters={"category": "movie_recommendations"})["results"]
    assert filtered and all(r["metadata"]["category"] == "movie_recommendations" for r in filtered)
    assert m.search("sci-fi", user_id="alice", filters={"category": "cooking"})["results"] == []

    assert m.update(memory_id=memory_id, data="I love India, it is my favorite country.") == {
        "message": "Memory updated successfully!"}
    assert m.get(memory_id)["memory"] == "I love India, it is my favorite country."
    history = m.history(memory_id=memory_id)
    assert [h["event"] for h in history] == ["ADD", "UPDATE"]
    assert history[1]["old_memory"] == MOVIES[2]["content"]
    assert history[1]["new_memory"] == "I love India, it is my favorite country."

    assert m.delete(memory_id=memory_id) == {"message": "Memory deleted successfully!"}
    assert m.get(memory_id) is None
    erased = m.history(memory_id)
    assert erased[-1]["event"] == "DELETE" and erased[-1]["is_deleted"]
    assert all(h["new_memory"] is None and h["old_memory"] is None for h in erased)  # erasure: hashes only

    assert m.delete_all(user_id="alice") == {"message": "Memories deleted successfully!"}
    assert m.get_all(user_id="alice")["results"] == []


def test_the_v0x_tennis_example_and_reset(m):
    m.add("I am working on improving my tennis skills. Suggest some online courses.", user_id="alice",
          metadata={"category": "hobbies"})
    m.add("Likes to play chess", user_id="bob")
    (first,) = m.get_all(user_id="alice")["results"]
    m.update(memory_id=first["id"], data="Likes to play tennis on weekends")
    related = m.search(query="What are Alice's hobbies?", user_id="alice")["results"]
    assert related[0]["memory"] == "Likes to play tennis on weekends"
    (change,) = [h for h in m.history(memory_id=first["id"]) if h["event"] == "UPDATE"]
    assert change["old_memory"].startswith("I am working on improving my tennis skills")
    assert m.reset() is None
    assert m.get_all(user_id="alice")["results"] == [] and m.get_all(user_id="bob")["results"] == []


def test_agent_and_run_only_scopes_and_missing_ids(m):
    m.add("Prefers short answers", agent_id="helper")
    assert [r["memory"] for r in m.get_all(agent_id="helper")["results"]] == ["Prefers short answers"]
    assert m.get_all(user_id="alice")["results"] == []
    with pytest.raises(InvalidInputError, match="user_id"):
        m.add("no one's", metadata={"x": 1})
    with pytest.raises(ValueError):  # mem0 raises ValueError here; Engram's error is one
        m.search("anything")
    with pytest.raises(InvalidInputError):
        m.delete_all()
    with pytest.raises(InvalidInputError, match="OR"):
        m.search("x", filters={"OR": [{"user_id": "a"}, {"user_id": "b"}]})
    with pytest.raises(InvalidInputError, match="operator"):
        m.get_all(user_id="a", filters={"category": {"like": "x"}})
    with pytest.raises(NotFoundError):
        m.update("mem_nothing", "text")


@pytest.mark.distill
def test_infer_waits_for_distilled_memories_derived_from_the_turns(tmp_path):
    with Memory(tmp_path / "infer.db", embedder=FakeEmbedder()) as m:
        result = m.add(MOVIES, user_id="alice", metadata={"category": "movie_recommendations"})
        kinds = {r["kind"] for r in result["results"]}
        assert "turn" in kinds and kinds - {"turn"}, kinds  # facts / preferences / events beside the turns
        turn_ids = {r["id"] for r in result["results"] if r["kind"] == "turn"}
        derived = [r for r in result["results"] if r["kind"] != "turn"]
        assert all(set(r["sources"]) <= turn_ids and r["event"] == "ADD" for r in derived)


def test_from_config_and_async(tmp_path):
    m = Memory.from_config({"store": f"sqlite:///{tmp_path}/c.db", "config": {"extractor": "none"}})
    assert m.engram.config.extractor == "none"
    m.close()
    with pytest.raises(ConfigError, match="vector_store"):
        Memory.from_config({"vector_store": {"provider": "qdrant", "config": {"host": "localhost"}}})

    async def run() -> None:
        am = AsyncMemory(tmp_path / "a.db", embedder=FakeEmbedder(), config=Config(extractor="none"))
        added = await am.add("I love pizza and prefer thin crust", user_id="alice")
        found = await am.search("What food does alice like?", user_id="alice")
        assert found["results"][0]["id"] == added["results"][0]["id"]
        await am.close()

    asyncio.run(run())
