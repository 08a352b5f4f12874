"""A year of one person's life through the public API, distilled by the real offline
extractor, on SQLite and PostgreSQL: Nora moves twice, changes jobs, breaks up, adopts a
dog, goes from vegetarian to vegan, and keeps talking about pottery. After every session
the profile states the current truth once `flush()` returns; `as_of` profiles state the
past one; erasing a turn leaves no trace of it in the profile, the topic memories or
anywhere else in the store (the derivation rule, scanned)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engramdb import Config, Memory
from engramdb.living.topics import KIND
from engramdb.providers.fake import FakeEmbedder

pytestmark = pytest.mark.distill

USER = "nora"
CONFIG = Config(extractor="offline", topics=True)

# (session, when, what Nora says, what the profile must then say by topic, what it must no longer say)
YEAR = [
    ("s01", "2024-01-10T10:00:00Z", ["I live in Paris.", "I work at Acme.", "I love pottery."],
     {"home": "Paris", "work": "Acme", "tastes": "pottery"}, []),
    ("s02", "2024-02-14T10:00:00Z", ["I'm dating Lena.", "I am vegetarian."],
     {"family": "Lena", "health": "vegetarian", "home": "Paris"}, []),
    ("s03", "2024-03-05T10:00:00Z", ["I moved to Berlin.", "I took a pottery class on Saturday."],
     {"home": "Berlin"}, ["Paris"]),
    ("s04", "2024-04-20T10:00:00Z", ["I started a new job at Globex."],
     {"work": "Globex", "home": "Berlin"}, ["Acme"]),
    ("s05", "2024-06-01T10:00:00Z", ["Lena and I broke up."],
     {"family": "single"}, ["Lena"]),
    ("s06", "2024-07-15T10:00:00Z", ["I adopted a dog named Rex.", "My pottery wheel arrived from Kyoto."],
     {"family": "Rex"}, ["Lena"]),
    ("s07", "2024-09-01T10:00:00Z", ["I'm vegan now."],
     {"health": "vegan"}, ["vegetarian"]),
    ("s08", "2024-11-10T10:00:00Z", ["I moved to Lisbon.", "I sold my first pottery bowl."],
     {"home": "Lisbon", "work": "Globex", "health": "vegan"}, ["Berlin", "Paris", "Acme", "vegetarian"]),
]
# The profile as it stood on a day of the year: topic -> a word it says, and words it must not say.
AS_OF = [
    ("2024-02-20T00:00:00Z", {"home": "Paris", "work": "Acme", "family": "Lena", "health": "vegetarian"},
     ["Berlin", "Globex", "Lisbon", "vegan", "single"]),
    ("2024-05-01T00:00:00Z", {"home": "Berlin", "work": "Globex", "family": "Lena"}, ["Paris", "Acme", "single"]),
    ("2024-08-01T00:00:00Z", {"home": "Berlin", "family": "Rex", "health": "vegetarian"},
     ["Lena", "Lisbon", "vegan"]),
]


class EndOfYear:
    def now(self) -> datetime:
        return datetime(2024, 12, 31, tzinfo=timezone.utc)


def said(profile, topic: str) -> str:
    return " ".join(i.text for i in profile.items if i.topic == topic)


def check(profile, wanted: dict[str, str], gone: list[str], when: str) -> None:
    for topic, word in wanted.items():
        assert word in said(profile, topic), f"{when}: {topic} should say {word!r}:\n{profile.text}"
    for word in gone:
        assert word not in profile.text, f"{when}: the profile still says {word!r}:\n{profile.text}"
    assert len(profile.text.split("\n")) == 1 + len(profile.items), "one line per item under the preamble"


def live_year(mem: Memory) -> dict[str, str]:
    """Nora's year, session by session, checking the profile after each; returns her
    turn ids by text."""
    ids = {}
    for session, when, texts, wanted, gone in YEAR:
        added = mem.add([{"role": "user", "content": t, "timestamp": when} for t in texts], user_id=USER,
                        session_id=session)
        ids.update(zip(texts, added.ids))
        assert mem.flush(120)
        profile = mem.profile(USER)
        check(profile, wanted, gone, f"after {session}")
        block = mem.context("what is new with Nora?", user_id=USER, budget_tokens=600, include_profile=True)
        assert block.startswith(profile.text.split("\n")[0])
    return ids


def topic_texts(mem: Memory) -> list[str]:
    return [r.text for r in mem.list(user_id=USER, filters={"kind": KIND}, include_retired=True, limit=500)]


def readable(mem: Memory, export: Path) -> str:
    """Every text a user of the API can get back: records of every state, their history,
    the profile then and now, an export."""
    records = mem.list(user_id=USER, limit=1000, include_retired=True)
    parts = [r.text for r in records] + [str(r.metadata) for r in records]
    for record in records:
        parts += [f"{v.text} {v.reason}" for v in mem.history(record.id)]
    for as_of in (None, *(a for a, _, _ in AS_OF)):
        profile = mem.profile(USER, as_of=as_of, budget_tokens=2000)
        parts += [profile.text, str(profile.to_dict())]
    mem.export(export, user_id=USER)
    parts.append(export.read_text())
    return "\n".join(parts)


def store_texts(mem: Memory, backend: str, path: Path | None) -> str:
    """What the store holds itself: SQLite's files (after compact()) and keyword index;
    every row of every table of PostgreSQL's schema."""
    mem.compact()
    if backend == "sqlite":
        assert path is not None
        files = "\n".join(p.read_bytes().decode("latin-1") for p in path.parent.iterdir()
                          if p.is_file() and p.name.startswith(path.name))
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, fts, 'row')")
            terms = " ".join(row[0] for row in conn.execute("SELECT term FROM temp.vocab"))
        finally:
            conn.close()
        return files + "\n" + terms
    store = mem.store
    out = []
    with store._connection() as conn:  # the test reads the tables themselves, not the API
        schema = store.schema
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))]
        for table in tables:
            out += [row[0] for row in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t')]
    return "\n".join(out)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_year_of_nora(backend, tmp_path, request):
    path = tmp_path / "nora.db" if backend == "sqlite" else None
    url = path if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Memory(url, embedder=FakeEmbedder(), config=CONFIG, clock=EndOfYear()) as mem:
        ids = live_year(mem)
        for as_of, wanted, gone in AS_OF:
            check(mem.profile(USER, as_of=as_of), wanted, gone, f"as of {as_of}")

        # the recurring topic: pottery, in four sessions, linked to each of its turns
        (pottery,) = [r for r in mem.list(user_id=USER, filters={"kind": KIND}) if r.metadata["term"] == "pottery"]
        assert pottery.metadata["sessions"] == 4 and len(pottery.sources) == 4
        assert "wheel arrived from Kyoto" in pottery.text

        before = store_texts(mem, backend, path)
        assert "Lisbon" in before and "Kyoto" in before, "the scan sees what is there"
        assert "Kyoto" in readable(mem, tmp_path / "before.jsonl")

        # erase the Lisbon move: the profile says Berlin again; no trace of Lisbon remains
        mem.delete(ids["I moved to Lisbon."], user_id=USER)
        assert mem.flush(120)
        check(mem.profile(USER), {"home": "Berlin", "work": "Globex"}, ["Lisbon"], "after erasing Lisbon")

        # erase a pottery turn: the topic is rebuilt from the three left, without it
        mem.delete(ids["My pottery wheel arrived from Kyoto."], user_id=USER)
        assert mem.flush(120)
        (rebuilt,) = [r for r in mem.list(user_id=USER, filters={"kind": KIND}) if r.metadata["term"] == "pottery"]
        assert rebuilt.metadata["sessions"] == 3 and len(rebuilt.sources) == 3
        assert not [t for t in topic_texts(mem) if "Kyoto" in t or "wheel" in t]

        everything = readable(mem, tmp_path / "nora.jsonl")
        for word in ("Lisbon", "Kyoto", "wheel arrived"):
            assert word not in everything, f"{word!r} is still readable through the API"
        held = store_texts(mem, backend, path)
        for word in ("Lisbon", "Kyoto", "wheel arrived"):
            assert word not in held, f"{word!r} is still in the store"
        assert "lisbon" not in held.split() and "kyoto" not in held.split()
        assert "Berlin" in held and "pottery" in held, "the scan reads the store (what survives is there)"
