"""The derivation rule, end to end on both backends: a derived memory is a function of
its live sources. Erase or update a turn and what was derived from it is re-derived from
what remains, or erased; no text of an erased turn survives anywhere (records, derived
texts, keyword index, vectors, history, exports, and, for SQLite, the database files
after compact()).

The demo conversation is distilled once with the real offline extractor; each erasure
then runs on a copy of that store (SQLite: the files; PostgreSQL: `copy_store`, which
carries derivation links)."""

from __future__ import annotations

import re
import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest

from engramdb import Config, Memory
from engramdb.demo import ingest, load_sample
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores.transfer import copy_store
from engramdb.types import Scope

pytestmark = pytest.mark.distill

OFFLINE = Config(extractor="offline")
TURNS_ONLY = Config(extractor="none")
WORD = re.compile(r"\w+", re.UNICODE)
USER = "alice"


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def windows(text: str, size: int = 6) -> list[list[str]]:
    found = words(text)
    return [found[i:i + size] for i in range(max(1, len(found) - size + 1))] if found else []


def stem(word: str) -> str:
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer(mode=PorterStemmer.ORIGINAL_ALGORITHM).stem(word)


def leaked_windows(erased: str, surviving: list[str], haystack: str) -> list[str]:
    """6-word windows of the erased text that no surviving turn says but `haystack` holds
    (words matched across any punctuation or spacing)."""
    said = " ".join(" ".join(words(t)) for t in surviving)
    out = []
    for window in windows(erased):
        phrase = " ".join(window)
        if phrase in said:
            continue
        if re.search(r"\W+".join(map(re.escape, window)), haystack, re.IGNORECASE):
            out.append(phrase)
    return out


def private_terms(erased: str, surviving: list[str]) -> set[str]:
    """The erased text's stemmed words (5+ letters) that no surviving turn has."""
    kept = {stem(w) for t in surviving for w in words(t)}
    return {s for w in words(erased) if len(s := stem(w)) >= 5 and s not in kept}


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    """The demo conversation, distilled, in a closed SQLite store."""
    path = tmp_path_factory.mktemp("demo") / "engram.db"
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        ingest(mem, load_sample())
        assert mem.flush(120)
        assert [r for r in mem.list(user_id=USER, limit=500) if r.kind == "summary"], "the demo has summaries"
    return path


def copy_sqlite(template: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for file in template.parent.iterdir():
        if file.name.startswith(template.name):
            shutil.copy(file, target / file.name)
    return target / template.name


def turn_of(mem: Memory, source: str):
    (turn,) = [r for r in mem.list(user_id=USER, limit=500) if r.kind == "turn" and r.sources == [source]]
    return turn


def everything_readable(mem: Memory, exported: Path) -> str:
    """Every text a user of the API can get back: records of every state, their history,
    an export."""
    records = mem.list(user_id=USER, limit=1000, include_retired=True)
    parts = [r.text for r in records] + [str(r.metadata) for r in records]
    for record in records:
        parts += [f"{v.text} {v.reason}" for v in mem.history(record.id)]
    mem.export(exported, user_id=USER)
    parts.append(exported.read_text())
    return "\n".join(parts)


def sqlite_index_terms(path: Path) -> set[str]:
    """Every term in the store's FTS5 index (read through fts5vocab in a temp schema: the
    file is not changed)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, fts, 'row')")
        return {row[0] for row in conn.execute("SELECT term FROM temp.vocab")}
    finally:
        conn.close()


def check_sqlite_erasure(path: Path, erased: str, surviving: list[str], tmp: Path) -> None:
    with Memory(path, embedder=FakeEmbedder(), config=TURNS_ONLY) as mem:
        readable = everything_readable(mem, tmp / "export.jsonl")
        mem.compact()
    assert leaked_windows(erased, surviving, readable) == []
    files = "\n".join(p.read_bytes().decode("latin-1") for p in path.parent.iterdir() if p.is_file()
                      and p.parent == path.parent and not p.name.endswith(".jsonl"))
    assert leaked_windows(erased, surviving, files) == [], "erased text is still in the database files"
    terms = private_terms(erased, surviving)
    assert not terms & sqlite_index_terms(path), "the keyword index still holds the erased turn's words"


def test_every_demo_turn_erased_in_turn_leaves_nothing_sqlite(demo_store, tmp_path):
    sample = load_sample()
    messages = [m for s in sample["sessions"] for m in s["messages"]]
    for index, message in enumerate(messages):
        path = copy_sqlite(demo_store, tmp_path / f"t{index}")
        with Memory(path, embedder=FakeEmbedder(), config=TURNS_ONLY) as mem:
            mem.delete(turn_of(mem, message["id"]).id)
            surviving = [r.text for r in mem.list(user_id=USER, limit=500) if r.kind == "turn"]
        check_sqlite_erasure(path, message["content"], surviving, tmp_path / f"t{index}")


def test_forgetting_a_session_leaves_nothing_and_other_sessions_keep_theirs_sqlite(demo_store, tmp_path):
    sample = load_sample()
    for session in sample["sessions"]:
        path = copy_sqlite(demo_store, tmp_path / session["session_id"])
        with Memory(path, embedder=FakeEmbedder(), config=TURNS_ONLY) as mem:
            mem.forget(user_id=USER, session_id=session["session_id"])
            left = mem.list(user_id=USER, limit=500, include_retired=True)
            surviving = [r.text for r in left if r.kind == "turn"]
            assert surviving and all(r.session_id != session["session_id"] for r in left if r.kind == "turn")
            assert any(r.kind != "turn" for r in left), "other sessions keep their memories"
        erased = " ".join(m["content"] for m in session["messages"])
        check_sqlite_erasure(path, erased, surviving, tmp_path / session["session_id"])


def test_deleting_s1_07_rederives_the_session_summary_without_it(demo_store, tmp_path):
    """Issue 10, bug 1: the summary quoted the erased turn ("a solar energy startup") and
    kept it, with the source dropped, even after compact()."""
    path = copy_sqlite(demo_store, tmp_path / "s1-07")
    with Memory(path, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        before = [r for r in mem.list(user_id=USER, limit=500) if r.kind == "summary" and r.session_id == "s1"]
        assert any("solar energy startup" in r.text for r in before)
        mem.delete(turn_of(mem, "s1-07").id)
        assert mem.flush(60)
        summaries = [r for r in mem.list(user_id=USER, limit=500) if r.kind == "summary" and r.session_id == "s1"]
        assert summaries, "the session's summary is made again from what is left"
        assert all("s1-07" not in r.sources and "Sunlane" not in r.text for r in summaries)
        assert {r.id for r in before}.isdisjoint(r.id for r in summaries)
        assert not [h for h in mem.search("Sunlane solar energy startup", user_id=USER, include_retired=True)
                    if "solar" in h.text.lower()]
        surviving = [r.text for r in mem.list(user_id=USER, limit=500) if r.kind == "turn"]
    check_sqlite_erasure(path, _content(load_sample(), "s1-07"), surviving, tmp_path / "s1-07")


def _content(sample: dict, source: str) -> str:
    return next(m["content"] for s in sample["sessions"] for m in s["messages"] if m["id"] == source)


# -- update: the current answer is the new one -------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_updating_a_turn_rederives_what_it_said(backend, tmp_path, request):
    """Issue 10, bug 2: "I live in Paris" -> update to "I live in Rome": the Paris fact
    stayed current, ranked first, and context() showed it next to "I live in Rome"."""
    url = tmp_path / "u.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Memory(url, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        (turn,) = mem.add([{"content": "I live in Paris.", "timestamp": "2024-01-10T10:00:00Z"}], user_id="ann").records
        assert mem.flush(60)
        (paris,) = [r for r in mem.list(user_id="ann") if r.kind == "fact"]
        assert "Paris" in paris.text
        mem.update(turn.id, "I live in Rome.")
        assert mem.flush(60)
        facts = [r for r in mem.list(user_id="ann") if r.kind == "fact"]
        assert [f.text for f in facts] == [paris.text.replace("Paris", "Rome")]
        assert mem.get(paris.id).valid_to is not None
        assert [v.event for v in mem.history(paris.id)][-1] == "outdate"
        assert f"its source {turn.id} was updated" == mem.history(paris.id)[-1].reason  # ids only
        hits = mem.search("where does Ann live?", user_id="ann")
        assert not [h for h in hits if "Paris" in h.text]
        block = mem.context("where does Ann live?", user_id="ann", budget_tokens=500)
        assert "Rome" in block and "Paris" not in block
        as_then = [h.text for h in mem.search("Paris", user_id="ann", as_of="2024-01-11T00:00:00Z")]
        assert paris.text in as_then  # as of before the update... (valid until it)
        # An update that says the same thing again revives the outdated memory, not a copy.
        mem.update(turn.id, "I live in Paris.")
        assert mem.flush(60)
        assert [r.id for r in mem.list(user_id="ann") if r.kind == "fact"] == [paris.id]
        assert [v.event for v in mem.history(paris.id)][-2:] == ["outdate", "reinstate"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_update_reinstates_what_the_old_text_superseded(backend, tmp_path, request):
    url = tmp_path / "r.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Memory(url, embedder=FakeEmbedder(), config=OFFLINE) as mem:
        mem.add([{"content": "I live in Oslo.", "timestamp": "2024-01-01T00:00:00Z"}], user_id="ann")
        (moved,) = mem.add([{"content": "I moved to Zanzibarville.", "timestamp": "2024-03-01T00:00:00Z"}],
                           user_id="ann").records
        assert mem.flush(60)
        assert [r.text for r in mem.list(user_id="ann") if r.kind == "fact"] == ["The user lives in Zanzibarville"]
        mem.update(moved.id, "I went to a concert.")  # the move was a mistake
        assert mem.flush(60)
        assert [r.text for r in mem.list(user_id="ann") if r.kind == "fact"] == ["The user lives in Oslo"]
        mem.delete(moved.id)  # and then erased: the outdated memory and the old text go
        assert not [r for r in mem.list(user_id="ann", include_retired=True) if "Zanzibar" in r.text]


# -- PostgreSQL: the same erasures ---------------------------------------------------------


def postgres_texts(store, schema: str) -> str:
    """Every text and JSON value in every table of the store's schema, as PostgreSQL holds it."""
    out = []
    with store._connection() as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))]
        for table in tables:
            for row in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t'):
                out.append(row[0])
    return "\n".join(out)


@pytest.mark.parametrize("source", ["s1-07", "s1-03", "s2-03", "s3-09"])
def test_erasures_leave_nothing_postgresql(demo_store, postgres_url, tmp_path, source):
    from engramdb.stores.postgres import PostgresStore
    from engramdb.stores.sqlite import SQLiteStore

    schema = f"t_{uuid.uuid4().hex[:12]}"
    sqlite_store = SQLiteStore(copy_sqlite(demo_store, tmp_path / "copy"))
    target = PostgresStore(postgres_url, schema=schema)
    try:
        copy_store(sqlite_store, target)
    finally:
        sqlite_store.close()
    target.close()
    store = PostgresStore(postgres_url, schema=schema)
    try:
        turns = [r for r in store.export(Scope(USER)) if r.record.kind == "turn"]
        (turn,) = [t.record for t in turns if t.record.sources == [source]]
        assert store.delete(turn.id, at="2025-01-01T00:00:00.000000Z", actor="test")
        surviving = [t.record.text for t in turns if t.record.id != turn.id]
        store.compact()
        held = postgres_texts(store, schema)
        erased = _content(load_sample(), source)
        assert leaked_windows(erased, surviving, held) == []
        with store._connection() as conn:  # PostgreSQL's own stems of the erased words no live turn has
            def lexemes(text: str) -> set[str]:
                return {r[0] for r in conn.execute("SELECT unnest(tsvector_to_array(to_tsvector('english', %s)))",
                                                   (text,))}
            private = {w for w in lexemes(erased) - lexemes(" ".join(surviving)) if len(w) >= 5}
            indexed = {r[0] for r in conn.execute(
                f'SELECT DISTINCT unnest(tsvector_to_array(tsv)) FROM "{schema}".keywords')}
        assert private and not private & indexed
    finally:
        store.close()


def test_an_erased_vector_leaves_the_saved_graph_after_compact(tmp_path):
    """usearch marks a removal and keeps the bytes: compact() drops every graph that still
    holds erased vectors, in memory and on disk; the next search rebuilds it from the live ones."""
    import numpy as np

    embedder = FakeEmbedder()
    path = tmp_path / "g.db"
    secret = "Zanzibarville is where the secret plan lives"
    vector = embedder.embed([secret])[0].astype(np.float32).tobytes()
    with Memory(path, embedder=embedder, config=Config(ann_threshold=50, extractor="none")) as mem:
        mem.add([f"turn number {i} about topic {i % 7}" for i in range(200)], user_id="u")
        (turn,) = mem.add(secret, user_id="u").records
        mem.search("topic", user_id="u")
        assert mem.flush(60)
        mem.search("topic", user_id="u")
        graphs = list(path.parent.rglob("*.usearch"))
        assert graphs and any(vector in g.read_bytes() for g in graphs)  # the graph holds it
        mem.delete(turn.id)
        mem.search("topic", user_id="u")
        mem.compact()
        assert [h.text for h in mem.search("turn number 3 about topic 3", user_id="u")][:1] == [
            "turn number 3 about topic 3"]
        assert mem.flush(60)
        mem.search("topic", user_id="u")
    assert list(path.parent.rglob("*.usearch")), "the graph was built again"
    for file in path.parent.rglob("*"):
        if file.is_file():
            assert vector not in file.read_bytes(), file.name


def test_forgetting_the_whole_user_leaves_none_of_their_text(demo_store, tmp_path):
    path = copy_sqlite(demo_store, tmp_path / "all")
    with Memory(path, embedder=FakeEmbedder(), config=TURNS_ONLY) as mem:
        assert mem.forget(user_id=USER) > 0
        assert mem.list(user_id=USER, include_retired=True) == [] and mem.jobs(user_id=USER)["pending"] == 0
    erased = " ".join(m["content"] for s in load_sample()["sessions"] for m in s["messages"])
    check_sqlite_erasure(path, erased, [], tmp_path / "all")
