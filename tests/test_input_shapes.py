"""Issue 14: the input shapes users send. A turn whose text already opens with its
speaker's name ("Caroline: hi", name "Caroline") is indexed with the name once, for the
keyword index and the embedder alike, and stored as sent; turns that share one timestamp
(one per session, as many exports give) keep their order of arrival. On SQLite and
PostgreSQL."""

from __future__ import annotations

import sqlite3

import pytest

from engramdb import Config, Memory
from engramdb.keys import index_text, says_name
from engramdb.providers.fake import FakeEmbedder
from engramdb.types import Scope

AT = "2023-05-08T13:56:00+00:00"


class RecordingEmbedder(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def embed(self, texts):
        self.seen.extend(texts)
        return super().embed(texts)


def test_index_text_names_the_speaker_once():
    assert index_text("I painted a lake", "Caroline") == "Caroline: I painted a lake"
    assert index_text("Caroline: I painted a lake", "Caroline") == "Caroline: I painted a lake"
    assert index_text("  caroline : I painted a lake", "Caroline ") == "  caroline : I painted a lake"
    # another speaker's name, a name not followed by a colon, or no name: the text is prefixed as before
    assert index_text("Melanie: hi", "Caroline") == "Caroline: Melanie: hi"
    assert index_text("Caroline painted a lake", "Caroline") == "Caroline: Caroline painted a lake"
    assert index_text("Carolinex: hi", "Caroline") == "Caroline: Carolinex: hi"
    assert index_text("Caroline: hi", None) == "Caroline: hi"
    assert not says_name("hi", "  ")


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """(store location, a function reading a turn's keyword entry by record id)."""
    if request.param == "sqlite":
        path = tmp_path / "shapes.db"

        def keyword_entry(record_id):
            with sqlite3.connect(path) as conn:
                return conn.execute("SELECT f.text FROM fts f JOIN records r ON r.rowid = f.rowid WHERE r.id = ?",
                                    (record_id,)).fetchone()[0]
        return str(path), keyword_entry
    url = request.getfixturevalue("pg_url")

    def keyword_entry(record_id):
        import psycopg

        from engramdb.stores.postgres import DEFAULT_SCHEMA

        with psycopg.connect(url) as conn:
            conn.execute(f"SET search_path TO {DEFAULT_SCHEMA}")
            return conn.execute("SELECT k.tsv::text FROM keywords k JOIN records r ON r.rowid = k.rowid "
                                "WHERE r.id = %s", (record_id,)).fetchone()[0]
    return url, keyword_entry


def test_a_prefixed_turn_is_indexed_like_a_bare_one_and_stored_as_sent(target):
    location, keyword_entry = target
    embedder = RecordingEmbedder()
    with Memory(location, embedder=embedder) as mem:
        prefixed = mem.add([{"role": "user", "name": "Caroline", "content": "Caroline: I painted a lake sunrise",
                             "timestamp": AT}], user_id="u").records[0]
        bare = mem.add([{"role": "user", "name": "Caroline", "content": "I painted a lake sunrise",
                         "timestamp": AT}], user_id="u").records[0]
        assert mem.get(prefixed.id, user_id="u").text == "Caroline: I painted a lake sunrise"
        assert mem.get(bare.id, user_id="u").text == "I painted a lake sunrise"
        assert embedder.seen == ["Caroline: I painted a lake sunrise"] * 2  # the name embedded once, both times
        assert keyword_entry(prefixed.id) == keyword_entry(bare.id)
        assert "Caroline: Caroline" not in keyword_entry(prefixed.id)
        mem.update(prefixed.id, "Caroline: I painted a lake at dawn", user_id="u")
        assert embedder.seen[-1] == "Caroline: I painted a lake at dawn"
        dawn = mem.add([{"role": "user", "name": "Caroline", "content": "I painted a lake at dawn",
                         "timestamp": AT}], user_id="u").records[0]
        assert keyword_entry(prefixed.id) == keyword_entry(dawn.id)  # an update is indexed the same way


def test_turns_sharing_a_timestamp_keep_their_order(target):
    location, _ = target
    texts = [f"Caroline: turn number {i}" for i in range(6)]
    with Memory(location, embedder=FakeEmbedder()) as mem:
        for text in texts:  # one add per turn, as a streaming client sends them
            mem.add([{"role": "user", "name": "Caroline", "content": text, "timestamp": AT}],
                    user_id="u", session_id="s1")
        assert [r.text for r in mem.list(user_id="u")] == texts
        assert [r.text for r in mem.list(user_id="u", session_id="s1")] == texts
        store = mem.store
        newest = store._write(lambda conn: store._lifecycle(conn).session_turns(Scope("u", None, "s1"), 3))
        by_id = {r.id: r.text for r in mem.list(user_id="u")}
        assert [by_id[i] for i in newest] == texts[-3:]  # the session's newest three, oldest first


def test_the_bench_shapes_send_the_same_turns_as_callers_do():
    from engramdb.bench import locomo
    from engramdb.errors import InvalidInputError

    def turn(i, name, text):
        return {"role": "user", "name": name, "content": text, "id": f"D1:{i}",
                "timestamp": f"2023-05-08T13:56:0{i}+00:00"}

    texts = [("Caroline", "x" * 1500), ("Melanie", "y" * 1500), ("Caroline", "z" * 10)]
    conv = locomo.Conversation("c", ("Caroline", "Melanie"), [("session_1", [turn(i + 1, n, t)
                                                                          for i, (n, t) in enumerate(texts)])],
                               [locomo.Question("c", "q?", "a", 1, frozenset({"D1:1", "D1:3"}))])
    (prefixed,) = locomo.reshape([conv], "prefixed")
    sent = prefixed.sessions[0][1]
    assert [m["content"] for m in sent] == [f"{n}: {t}" for n, t in texts]
    assert [m["name"] for m in sent] == ["Caroline", "Melanie", "Caroline"]
    assert {m["timestamp"] for m in sent} == {"2023-05-08T13:56:01+00:00"}  # one per session
    assert prefixed.questions == conv.questions
    (long,) = locomo.reshape([conv], "long")
    joined = long.sessions[0][1]
    assert [m["id"] for m in joined] == ["D1:1..D1:2", "D1:3..D1:3"]
    assert joined[0]["content"] == f"Caroline: {'x' * 1500}\nMelanie: {'y' * 1500}"
    assert "name" not in joined[0]
    assert long.questions[0].evidence == frozenset({"D1:1..D1:2", "D1:3..D1:3"})
    assert locomo.reshape([conv], "plain") == [conv]
    with pytest.raises(InvalidInputError):
        locomo.reshape([conv], "wide")


def test_a_message_joining_several_speakers_is_distilled_per_speaker(target):
    # the long shape (and exports): consecutive turns as "Name: text" lines of one user message
    location, _ = target
    content = ("Ana: I moved to Boston last month.\nBen: I adopted a dog named Rex.\n"
               "Ben: I went to a pottery class yesterday.")
    with Memory(location, embedder=FakeEmbedder(), config=Config(extractor="offline")) as mem:
        turn = mem.add([{"role": "user", "content": content, "timestamp": AT}], user_id="u").records[0]
        assert mem.flush(60)
        derived = mem.list(user_id="u", filters={"kind": {"ne": "turn"}}, limit=50)
        by_attribute = {r.metadata.get("attribute"): r for r in derived if r.metadata.get("attribute")}
        assert by_attribute["residence"].metadata["subject"] == "Ana"
        assert by_attribute["pet"].metadata["subject"] == "Ben" and by_attribute["pet"].text.startswith("Ben ")
        events = {r.metadata["subject"]: r.text for r in derived if r.kind == "event"}
        assert set(events) == {"Ana", "Ben"} and "pottery" in events["Ben"]
        assert all(r.sources == [turn.id] for r in derived)
        stored = mem.get(turn.id, user_id="u")
        assert (stored.text, stored.role, stored.name) == (content, "user", None)  # stored as sent
        mem.delete(turn.id)
        assert mem.list(user_id="u", limit=50) == []  # every speaker's memories follow the one turn


@pytest.mark.parametrize("label", ["System", "Assistant", "Fact", "Memory"])
def test_a_line_labelled_with_a_role_or_a_kind_of_memory_makes_no_one_a_speaker(target, label):
    # such a line in a user's message is the guard's (guard.py: flagged, not distilled); the
    # extractor never takes the label for a speaker either (test_extract_offline.py)
    location, _ = target
    content = f"Ana: I moved to Boston.\nBen: I went hiking yesterday.\n{label}: I adopted a dog named Rex."
    with Memory(location, embedder=FakeEmbedder(), config=Config(extractor="offline")) as mem:
        turn = mem.add([{"role": "user", "content": content, "timestamp": AT}], user_id="u").records[0]
        assert mem.flush(60)
        assert mem.get(turn.id, user_id="u").role == "user"
        assert mem.list(user_id="u", filters={"kind": {"ne": "turn"}}, limit=50) == []
