"""Recall that connects (issue 14): dense search without the named speakers' names, and
dense pseudo-relevance feedback."""

from __future__ import annotations

import numpy as np

from engramdb import Config, Memory
from engramdb.providers.fake import FakeEmbedder
from engramdb.retrieval import feedback_vector
from engramdb.speakers import mentioned_names, without_names

FILLER = ["The weather was grey all week.", "We cooked pasta for dinner on Friday.", "My car needs new tyres.",
          "I finished a puzzle of a lighthouse.", "The train was late again this morning.",
          "Work has been busy with the quarterly report.", "I watched a film about whales.",
          "Our neighbour plays the trumpet at night.", "The library opened a new wing.",
          "I bought a blue lamp for the desk."]


class Recording(FakeEmbedder):
    """The fake embedder, keeping every text it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts.extend(texts)
        return super().embed(texts)


def test_without_names_drops_whole_word_mentions_and_possessives():
    assert without_names("What activities does Melanie partake in?", {"Melanie"}) == "What activities does partake in?"
    assert without_names("What do melanie's kids like?", {"Melanie"}) == "What do kids like?"
    assert without_names("What did Jon and Gina both start?", {"Jon", "Gina"}) == "What did and both start?"
    assert without_names("Where does Timothy live?", {"Tim"}) == "Where does Timothy live?"  # whole words only
    assert without_names("Did Mary Ann call Ann?", {"Ann", "Mary Ann"}) == "Did call ?"  # the longer name first


def test_mentioned_names_are_whole_words_ignoring_case():
    assert mentioned_names("what does caroline like?", {"Caroline", "Mel", "X"}) == {"Caroline"}
    assert mentioned_names("What is Melanie's job?", {"Mel"}) == frozenset()


def test_a_query_that_names_a_speaker_is_embedded_without_the_name(tmp_path):
    embedder = Recording()
    with Memory(tmp_path / "s.db", embedder=embedder, config=Config(extractor="none")) as mem:
        mem.add([{"role": "user", "name": "Melanie", "content": "I went swimming with the kids."},
                 {"role": "user", "name": "Caroline", "content": "I went to a support group."}], user_id="u")
        embedder.texts.clear()
        hits = mem.search("What sports does Melanie do?", user_id="u", limit=5)
        assert "What sports does do?" in embedder.texts
        assert hits[0].text == "I went swimming with the kids."
        embedder.texts.clear()  # the first search learnt the speakers' names: the next starts with them
        mem.search("What games does Melanie play?", user_id="u", limit=5)
        assert embedder.texts == ["What games does play?"]
        embedder.texts.clear()
        mem.search("Melanie?", user_id="u", limit=5)  # nothing but a name: embedded as it is
        assert embedder.texts == ["Melanie?"]
    with Memory(tmp_path / "s.db", embedder=embedder,
                config=Config(extractor="none", dense_without_speakers=False)) as mem:
        embedder.texts.clear()
        mem.search("What sports does Melanie do?", user_id="u", limit=5)
        assert embedder.texts == ["What sports does Melanie do?"]


def test_an_erasure_forgets_the_speakers_names_search_had_learnt(tmp_path):
    embedder = Recording()
    with Memory(tmp_path / "e.db", embedder=embedder, config=Config(extractor="none")) as mem:
        mem.add([{"role": "user", "name": "Zora", "content": "I keep bees."}], user_id="u")
        mem.search("Does Zora keep bees?", user_id="u", limit=5)
        mem.forget(user_id="u")
        mem.add([{"role": "user", "content": "I keep bees."}], user_id="u")
        embedder.texts.clear()
        mem.search("Does Zora keep wasps?", user_id="u", limit=5)
        # No speaker is called Zora any more: the name stays in what is embedded.
        assert embedder.texts == ["Does Zora keep wasps?"]


def test_feedback_vector_moves_the_query_towards_the_seeds():
    query = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    seeds = [np.array([0.0, 2.0, 0.0]), np.array([0.0, 0.0, 1.0])]
    moved = feedback_vector(query, seeds, beta=0.75)
    assert moved is not None and np.isclose(np.linalg.norm(moved), 1.0)
    centroid = np.array([0.0, 1.0, 0.5]) / np.linalg.norm([0.0, 1.0, 0.5])
    assert float(moved @ centroid) > float(query @ centroid)  # nearer the seeds than the query was
    assert float(moved @ query) > float(moved @ centroid)  # still nearer the query (beta < 1)
    assert feedback_vector(query, []) is None
    assert feedback_vector(query, [np.zeros(3)]) is None


def test_feedback_finds_what_is_like_the_best_hits_though_it_shares_no_word_with_the_query(tmp_path):
    best = ["The garden roses are blooming among the tulips and daffodils.",
            "Roses in the garden, with tulips and daffodils blooming too.",
            "My garden: roses, tulips, daffodils, all blooming."]
    bridge = "Tulips and daffodils, blooming everywhere."

    def ranks(feedback: bool) -> tuple[list[str], int]:
        with Memory(tmp_path / f"f{feedback}.db", embedder=FakeEmbedder(dim=1024),  # few hash collisions
                    config=Config(extractor="none", dense_feedback=feedback)) as mem:
            mem.add([{"role": "user", "content": text} for text in [*best, *FILLER, bridge]], user_id="u")
            hits = [h.text for h in mem.search("garden roses", user_id="u", limit=20)]
        return hits, hits.index(bridge)

    hits, bridge_at = ranks(True)
    assert set(hits[:3]) == set(best) and bridge_at == 3  # before every filler
    _, bridge_at = ranks(False)
    assert bridge_at == len(best) + len(FILLER)  # no list tells it from the fillers: last of the ties
