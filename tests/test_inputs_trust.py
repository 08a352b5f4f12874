"""Inputs a memory can trust (issue 11): text that is not Unicode, ids that only look
alike, early and late dates, empty turns an importer may skip, and stores opened only
to be read, which are never created, never changed, never another program's."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engramdb import AsyncMemory, ConfigError, InvalidInputError, Memory, StorageError
from engramdb.cli import main
from engramdb.errors import PermissionDeniedError
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores import tenant_slug

CLEAN_ENV = {"ENGRAM_CONFIG": None, "ENGRAM_STORE": None, "COLUMNS": "200", "ENGRAM_EMBEDDER": "fake"}


def rows(path: Path) -> int:
    """Turns in a store, counted with a plain SQLite connection (not through Engram)."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def engram(*args: str, input: str | bytes | None = None):
    return CliRunner(env=CLEAN_ENV).invoke(main, list(args), input=input, catch_exceptions=False)


def one_line_error(result, code: int, cls: str, *texts: str) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {cls}: "), lines[0]
    for text in texts:
        assert text in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def seeded(db_path, fake_embedder):
    memory = Memory(db_path, embedder=fake_embedder)
    (first,) = memory.add("alice likes tea", user_id="alice", session_id="s1").records
    yield memory, first.id
    memory.close()


# -- text that is not Unicode ------------------------------------------------------------

SURROGATE = "caf\udce9"  # what Python makes of the byte 0xE9 read as UTF-8 with surrogateescape

BAD_TEXT_ADDS = [
    pytest.param(dict(messages=SURROGATE), "messages[0].content", id="content"),
    pytest.param(dict(messages=["fine", {"content": "a\ud800b"}]), "messages[1].content", id="content-second"),
    pytest.param(dict(messages={"content": "x", "name": SURROGATE}), "messages[0].name", id="name"),
    pytest.param(dict(messages={"content": "x", "id": SURROGATE}), "messages[0].id", id="message-id"),
    pytest.param(dict(messages="x", user_id=SURROGATE), "user_id", id="user_id"),
    pytest.param(dict(messages="x", session_id=SURROGATE), "session_id", id="session_id"),
    pytest.param(dict(messages="x", agent_id=SURROGATE), "agent_id", id="agent_id"),
    pytest.param(dict(messages="x", metadata={"source": SURROGATE}), "metadata['source']", id="metadata-value"),
    pytest.param(dict(messages="x", metadata={SURROGATE: 1}), "metadata", id="metadata-key"),
    pytest.param(dict(messages="x", metadata={"a": [{"b": SURROGATE}]}), "metadata['a'][0]['b']", id="metadata-deep"),
]


@pytest.mark.parametrize(("call", "field"), BAD_TEXT_ADDS)
def test_lone_surrogates_are_refused_naming_the_field(seeded, db_path, call, field):
    memory, _ = seeded
    kwargs = {"user_id": "alice", **call}
    messages = kwargs.pop("messages")
    before = rows(db_path)
    with pytest.raises(InvalidInputError, match="not valid Unicode") as caught:
        memory.add(messages, **kwargs)
    assert str(caught.value).startswith(field), caught.value
    assert "U+D" in str(caught.value)  # which character, printably
    str(caught.value).encode("utf-8")  # the message itself can be printed and sent
    assert rows(db_path) == before


def test_lone_surrogates_in_reads_and_updates(seeded, db_path):
    memory, rid = seeded
    before = rows(db_path)
    with pytest.raises(InvalidInputError, match="^query is not valid Unicode"):
        memory.search("a\ud800", user_id="alice")
    with pytest.raises(InvalidInputError, match="^query is not valid Unicode"):
        memory.context("a\ud800", user_id="alice")
    with pytest.raises(InvalidInputError, match=r"^filters\['session_id'\] is not valid Unicode"):
        memory.search("tea", user_id="alice", filters={"session_id": "s\ud800"})
    with pytest.raises(InvalidInputError, match="^text is not valid Unicode"):
        memory.update(rid, "alice likes \udce9")
    with pytest.raises(InvalidInputError, match=r"^metadata\['k'\] is not valid Unicode"):
        memory.update(rid, "alice likes coffee", metadata={"k": "\ud800"})
    with pytest.raises(InvalidInputError, match="^memory id is not valid Unicode"):
        memory.get("mem_\ud800")
    with pytest.raises(InvalidInputError, match="^user_id is not valid Unicode"):
        memory.list(user_id="al\ud800ice")
    assert rows(db_path) == before
    assert memory.get(rid).text == "alice likes tea"


def test_update_text_with_nul_is_refused_as_add_refuses_it(seeded):
    memory, rid = seeded
    with pytest.raises(InvalidInputError, match="NUL"):
        memory.update(rid, "alice\x00likes coffee")
    assert memory.get(rid).text == "alice likes tea"


# -- ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["id", "name"])
@pytest.mark.parametrize("value", [7, 7.5, ["x"]])
def test_a_non_string_id_or_name_is_refused_like_a_non_string_content(seeded, db_path, field, value):
    memory, _ = seeded
    before = rows(db_path)
    wrong = rf"^messages\[0\]\.{field} must be a string, got {type(value).__name__}"
    with pytest.raises(InvalidInputError, match=wrong):
        memory.add({"content": "hello", field: value}, user_id="alice")
    with pytest.raises(InvalidInputError, match=r"^messages\[0\]\.content must be a string, got int"):
        memory.add({"content": 7}, user_id="alice")
    assert rows(db_path) == before


def test_a_long_id_is_told_it_is_too_long(seeded, db_path):
    memory, _ = seeded
    long = "x" * 5000
    before = rows(db_path)
    for call, field in [
        (lambda: memory.get(long), "memory id"),
        (lambda: memory.add("hi", user_id=long), "user_id"),
        (lambda: memory.add("hi", user_id="alice", session_id=long), "session_id"),
        (lambda: memory.add({"content": "hi", "id": long}, user_id="alice"), "messages[0].id"),
        (lambda: memory.add({"content": "hi", "name": long}, user_id="alice"), "messages[0].name"),
    ]:
        with pytest.raises(InvalidInputError) as caught:
            call()
        assert str(caught.value) == f"{field} is 5000 characters long; the limit is 256"
    assert rows(db_path) == before
    assert len(memory.add({"content": "hi", "id": "y" * 256}, user_id="z" * 256)) == 1  # the limit itself is fine


LOOKALIKE_IDS = [
    pytest.param("acme ", "leading or trailing whitespace", id="trailing-space"),
    pytest.param(" acme", "leading or trailing whitespace", id="leading-space"),
    pytest.param("acme\u00a0", "leading or trailing whitespace", id="trailing-nbsp"),
    pytest.param("ac\tme", "control character U+0009", id="tab"),
    pytest.param("ac\nme", "control character U+000A", id="newline"),
    pytest.param("ac\x1bme", "control character U+001B", id="escape"),
    pytest.param("ac\u2028me", "line separator U+2028", id="line-separator"),
    pytest.param("a\x00b", "control character U+0000", id="nul"),
]


@pytest.mark.parametrize(("value", "says"), LOOKALIKE_IDS)
def test_ids_that_only_look_alike_are_refused(seeded, db_path, value, says):
    memory, _ = seeded
    before = rows(db_path)
    for call, field in [
        (lambda: memory.add("hi", user_id=value), "user_id"),
        (lambda: memory.add("hi", user_id="alice", agent_id=value), "agent_id"),
        (lambda: memory.add("hi", user_id="alice", session_id=value), "session_id"),
        (lambda: memory.add({"content": "hi", "id": value}, user_id="alice"), "messages[0].id"),
        (lambda: memory.add({"content": "hi", "name": value}, user_id="alice"), "messages[0].name"),
        (lambda: memory.search("tea", user_id=value), "user_id"),
        (lambda: memory.forget(user_id=value), "user_id"),
        (lambda: tenant_slug(value), "tenant"),
    ]:
        with pytest.raises(InvalidInputError) as caught:
            call()
        assert str(caught.value).startswith(field + " "), caught.value
        assert says in str(caught.value), caught.value
    assert rows(db_path) == before


def test_a_tenant_with_a_trailing_space_opens_nothing(tmp_path):
    with pytest.raises(InvalidInputError, match="^tenant .*whitespace"):
        Memory(tmp_path / "t.db", embedder=FakeEmbedder(), tenant="acme ")
    assert not (tmp_path / "t.tenants").exists()


@pytest.mark.parametrize("value", ["Alice Smith", "ünïcødé", "用户-42", "a.b@c:d/e", "x" * 256, "🙂"])
def test_ordinary_ids_are_kept_exactly(seeded, value):
    memory, _ = seeded
    (record,) = memory.add({"content": "hello there", "id": value, "name": value}, user_id=value,
                           session_id=value, agent_id=value).records
    assert (record.user_id, record.session_id, record.agent_id, record.sources, record.name) == (
        value, value, value, [value], value)
    assert tenant_slug(value).startswith("t_")


# -- dates ---------------------------------------------------------------------------------

YEARS = [
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
    ("0099-06-15T12:00:00Z", "0099-06-15T12:00:00.000000Z"),
    ("0999-12-31T23:59:59.5Z", "0999-12-31T23:59:59.500000Z"),
    ("1969-07-20T20:17:40Z", "1969-07-20T20:17:40.000000Z"),
    ("2024-02-29T00:00:00+02:00", "2024-02-28T22:00:00.000000Z"),
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
]


def test_early_and_late_years_are_stored_with_four_digits_and_round_trip(seeded):
    memory, _ = seeded
    messages = [{"content": f"said in {given[:4]}", "timestamp": given} for given, _ in YEARS]
    stored = memory.add(messages, user_id="dates").records
    assert [r.created_at for r in stored] == [want for _, want in YEARS]
    listed = memory.list(user_id="dates")  # time order is text order
    assert [r.created_at for r in listed] == [want for _, want in YEARS]
    again = memory.add([{"content": f"again {r.created_at}", "timestamp": r.created_at} for r in stored],
                       user_id="dates-again").records
    assert [r.created_at for r in again] == [r.created_at for r in stored]
    assert [r.text for r in memory.list(user_id="dates", as_of="0500-01-01T00:00:00Z")] == [
        "said in 0001", "said in 0099"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_moment_outside_the_calendar_once_in_utc_is_refused(seeded, db_path, value):
    memory, _ = seeded
    before = rows(db_path)
    with pytest.raises(InvalidInputError, match=r"^messages\[0\]\.timestamp .*out of range"):
        memory.add({"content": "hi", "timestamp": value}, user_id="alice")
    assert rows(db_path) == before


# -- empty turns -----------------------------------------------------------------------------


def chat_with_empty_turns() -> list:
    return [
        {"role": "user", "content": "I adopted a cat", "id": "t1"},
        {"role": "assistant", "content": "", "id": "t2"},
        {"role": "user", "content": "   \n", "id": "t3"},
        "",
        {"role": "assistant", "content": "What is its name?", "id": "t5"},
    ]


def test_empty_turns_reject_the_batch_by_default(seeded, db_path):
    memory, _ = seeded
    before = rows(db_path)
    with pytest.raises(InvalidInputError, match=r"^messages\[1\]\.content is empty"):
        memory.add(chat_with_empty_turns(), user_id="alice")
    assert rows(db_path) == before


def test_skip_empty_stores_the_rest_and_counts_what_it_skipped(seeded, db_path):
    memory, _ = seeded
    before = rows(db_path)
    result = memory.add(chat_with_empty_turns(), user_id="alice", session_id="import", skip_empty=True)
    assert [r.sources for r in result] == [["t1"], ["t5"]]
    assert result.skipped == 3 and len(result) == 2
    assert result.to_dict()["skipped"] == 3
    assert rows(db_path) == before + 2


def test_skip_empty_with_nothing_left_stores_nothing(seeded, db_path):
    memory, _ = seeded
    before, calls = rows(db_path), memory.embedder.calls
    result = memory.add(["", {"content": " "}], user_id="alice", skip_empty=True)
    assert (result.records, result.skipped) == ([], 2)
    assert rows(db_path) == before and memory.embedder.calls == calls


@pytest.mark.parametrize("bad", [
    pytest.param({"role": "robot", "content": ""}, id="bad-role-of-an-empty-turn"),
    pytest.param({"content": None}, id="no-content"),
    pytest.param({"content": 5}, id="int-content"),
    pytest.param({"content": "", "id": "t1"}, id="duplicate-id-of-an-empty-turn"),
])
def test_skip_empty_still_refuses_malformed_turns(seeded, db_path, bad):
    memory, _ = seeded
    before = rows(db_path)
    with pytest.raises(InvalidInputError, match=r"^messages\[1\]"):
        memory.add([{"content": "fine", "id": "t1"}, bad], user_id="alice", skip_empty=True)
    assert rows(db_path) == before


def test_skip_empty_through_async_memory(tmp_path):
    async def run():
        async with AsyncMemory(tmp_path / "a.db", embedder=FakeEmbedder()) as memory:
            result = await memory.add(["one", "", "two"], user_id="alice", skip_empty=True)
            assert (len(result), result.skipped) == (2, 1)
        async with AsyncMemory(tmp_path / "a.db", embedder=FakeEmbedder(), read_only=True) as reader:
            assert reader.read_only
            assert [r.text for r in await reader.list(user_id="alice")] == ["one", "two"]
            with pytest.raises(PermissionDeniedError, match="read-only"):
                await reader.add("three", user_id="alice")

    asyncio.run(run())
    assert rows(tmp_path / "a.db") == 2


# -- read-only opening -------------------------------------------------------------------------


def test_a_read_only_memory_never_creates_a_store(tmp_path):
    missing = tmp_path / "typo" / "nested" / "engram.db"
    with pytest.raises(ConfigError, match="no Engram store at"):
        Memory(missing, embedder=FakeEmbedder(), read_only=True)
    with pytest.raises(ConfigError, match="no Engram store at"):
        Memory(tmp_path / "typo.db", embedder=FakeEmbedder(), read_only=True, tenant="acme")
    assert os.listdir(tmp_path) == []


def test_a_read_only_memory_reads_and_refuses_every_write(seeded, db_path):
    memory, rid = seeded
    memory.close()
    before = digest(db_path)
    with Memory(db_path, embedder=FakeEmbedder(), read_only=True) as reader:
        assert reader.read_only
        assert reader.get(rid).text == "alice likes tea"
        assert [h.id for h in reader.search("tea", user_id="alice")] == [rid]
        assert "alice likes tea" in reader.context("tea", user_id="alice")
        assert reader.stats()["records"] == 1 and reader.jobs()["pending"] == 0
        assert [v.event for v in reader.history(rid)] == ["add"]
        assert reader.export(db_path.parent / "alice.jsonl", user_id="alice") == 1
        writes = [
            lambda: reader.add("more", user_id="alice"),
            lambda: reader.update(rid, "changed"),
            lambda: reader.delete(rid),
            lambda: reader.forget(user_id="alice"),
            lambda: reader.reset(confirm=True),
            lambda: reader.import_(db_path.parent / "alice.jsonl"),
            lambda: reader.compact(),
        ]
        for write in writes:
            with pytest.raises(PermissionDeniedError, match="read-only"):
                write()
        assert reader.flush(5) is True
    assert digest(db_path) == before
    assert rows(db_path) == 1


def test_a_read_only_memory_sees_what_a_writer_commits(seeded, db_path):
    writer, _ = seeded
    with Memory(db_path, embedder=FakeEmbedder(), read_only=True) as reader:
        assert reader.stats()["records"] == 1
        writer.add("alice likes rain", user_id="alice")
        assert [r.text for r in reader.list(user_id="alice")] == ["alice likes tea", "alice likes rain"]


def test_a_read_only_memory_on_a_store_of_a_newer_or_older_engram(seeded, db_path):
    memory, _ = seeded
    conn = memory.store._conn()
    conn.execute("INSERT INTO schema_migrations VALUES ('9999_future', 'x')")
    memory.close()
    with pytest.raises(ConfigError, match="newer Engram"):
        Memory(db_path, embedder=FakeEmbedder(), read_only=True)
    conn = sqlite3.connect(db_path)
    conn.execute("DELETE FROM schema_migrations WHERE name != '0001_records'")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="older Engram"):
        Memory(db_path, embedder=FakeEmbedder(), read_only=True)


# -- another program's database -----------------------------------------------------------------


def foreign_database(path: Path, *, wal: bool = False, migrations: bool = False) -> str:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('not yours')")
    if migrations:  # Rails, sqlx and others keep a table of this name too
        conn.execute("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO schema_migrations VALUES ('20240101000000')")
    conn.commit()
    conn.close()
    return digest(path)


@pytest.mark.parametrize("kind", ["rollback", "wal", "own-schema_migrations"])
@pytest.mark.parametrize("read_only", [False, True])
def test_another_programs_database_is_never_touched(tmp_path, kind, read_only):
    path = tmp_path / "app.db"
    before = foreign_database(path, wal=kind == "wal", migrations=kind == "own-schema_migrations")
    with pytest.raises(ConfigError, match="not an Engram store") as caught:
        Memory(path, embedder=FakeEmbedder(), read_only=read_only)
    assert "notes" in str(caught.value)
    assert digest(path) == before
    assert sorted(os.listdir(tmp_path)) == ["app.db"]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert tables == ({"notes", "schema_migrations"} if kind == "own-schema_migrations" else {"notes"})
    assert journal == ("wal" if kind == "wal" else "delete")


def test_an_empty_file_becomes_a_store_but_is_not_read_as_one(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(ConfigError, match="not an Engram store yet"):
        Memory(path, embedder=FakeEmbedder(), read_only=True)
    assert path.stat().st_size == 0
    with Memory(path, embedder=FakeEmbedder()) as memory:
        assert len(memory.add("hello", user_id="alice")) == 1


def test_random_bytes_stay_a_corrupt_file_error(tmp_path):
    path = tmp_path / "junk.db"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    for read_only in (False, True):
        with pytest.raises(StorageError, match="corrupt"):
            Memory(path, embedder=FakeEmbedder(), read_only=read_only)
    assert path.read_bytes() == garbage


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_non_utf8_stdin_is_a_one_line_error(tmp_path):
    store = tmp_path / "s.db"
    result = engram("--store", str(store), "add", "--user", "eve", input=b'{"content":"caf\xe9"}')
    one_line_error(result, 2, "InvalidInputError", "stdin is not valid UTF-8", "byte 0xe9", "line 1")
    assert not store.exists()


def test_cli_non_utf8_file_names_the_line(tmp_path):
    store, chat = tmp_path / "s.db", tmp_path / "chat.jsonl"
    chat.write_bytes(b'{"content": "one"}\n{"content": "two"}\n{"content": "caf\xe9"}\n')
    result = engram("--store", str(store), "add", "--user", "eve", "--file", str(chat))
    one_line_error(result, 2, "InvalidInputError", "chat.jsonl is not valid UTF-8", "line 3")
    assert not store.exists()


def test_cli_escaped_surrogate_in_json_is_a_one_line_error(tmp_path):
    store = tmp_path / "s.db"
    result = engram("--store", str(store), "add", "--user", "eve", input='{"content": "caf\\udce9"}')
    one_line_error(result, 2, "InvalidInputError", "content is not valid Unicode")
    assert not store.exists()


def test_cli_argument_that_was_not_utf8(tmp_path):
    """A shell argument of bytes that are not UTF-8 reaches Python as lone surrogates."""
    store = tmp_path / "s.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "ENGRAM_EMBEDDER": "fake",
           "ENGRAM_CONFIG": "", "LC_ALL": "C.UTF-8"}
    env.pop("ENGRAM_STORE", None)
    done = subprocess.run([sys.executable, "-m", "engramdb.cli", "--store", str(store), "add", b"caf\xe9", "--user",
                           "eve"], env=env, capture_output=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "messages[0].content is not valid Unicode" in lines[0], done.stderr
    assert not store.exists()


def test_cli_file_with_a_bad_last_line_stores_nothing(tmp_path):
    store, chat = tmp_path / "s.db", tmp_path / "chat.jsonl"
    lines = [json.dumps({"id": f"m{i}", "content": f"turn number {i}"}) for i in range(299)]
    lines.append('{"id": "m299", "content": "the last one \\ud800"}')
    chat.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = engram("--store", str(store), "add", "--user", "eve", "--file", str(chat), "--no-wait")
    one_line_error(result, 2, "InvalidInputError", "messages[299].content is not valid Unicode",
                   "chat.jsonl line 300")
    assert not store.exists()
    lines[-1] = '{"id": "m299", "content": "", "role": "user"}'
    chat.write_text("\n\n".join(lines) + "\n", encoding="utf-8")  # blank lines between: line numbers still right
    result = engram("--store", str(store), "add", "--user", "eve", "--file", str(chat), "--no-wait")
    one_line_error(result, 2, "InvalidInputError", "messages[299].content is empty", "chat.jsonl line 599")
    assert not store.exists()


def test_cli_skip_empty(tmp_path):
    store, chat = tmp_path / "s.db", tmp_path / "chat.jsonl"
    chat.write_text("\n".join(json.dumps(m) for m in chat_with_empty_turns()) + "\n", encoding="utf-8")
    out = engram("--store", str(store), "add", "--user", "eve", "--file", str(chat), "--skip-empty", "--no-wait",
                 "--json", "--batch-size", "2")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [r["sources"] for r in data["records"]] == [["t1"], ["t5"]] and data["skipped"] == 3
    assert rows(store) == 2
    table = engram("--store", str(store), "add", "--user", "eve", "--skip-empty", "--no-wait", input='["", "again"]')
    assert table.exit_code == 0, table.output
    assert "Added 1 memories" in table.stdout and "skipped 1 empty message" in table.stdout
    assert rows(store) == 3


READS = [
    ("stats",),
    ("stats", "--user", "eve"),
    ("search", "tea", "--user", "eve"),
    ("list", "--user", "eve"),
    ("get", "mem_x"),
    ("history", "mem_x"),
    ("context", "tea", "--user", "eve"),
    ("jobs",),
    ("export", "OUT", "--user", "eve"),
]


@pytest.mark.parametrize("command", READS, ids=" ".join)
def test_cli_reads_on_a_mistyped_path_create_nothing(tmp_path, command):
    typo = tmp_path / "tpyo" / "engram.db"
    args = [str(tmp_path / "out.jsonl") if a == "OUT" else a for a in command]
    result = engram("--store", f"sqlite:///{typo}", *args)
    one_line_error(result, 2, "ConfigError", f"no Engram store at {typo}")
    assert os.listdir(tmp_path) == []


def test_cli_migrate_from_a_mistyped_source_creates_nothing(tmp_path):
    result = engram("migrate", "--from", str(tmp_path / "nope.db"), "--to", str(tmp_path / "copy.db"))
    one_line_error(result, 2, "ConfigError", "no Engram store at")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", [("stats",), ("list", "--user", "eve"), ("add", "hi", "--user", "eve")],
                         ids=" ".join)
def test_cli_never_touches_another_programs_database(tmp_path, command):
    path = tmp_path / "app.db"
    before = foreign_database(path)
    result = engram("--store", str(path), *command)
    one_line_error(result, 2, "ConfigError", "not an Engram store")
    assert digest(path) == before and os.listdir(tmp_path) == ["app.db"]


def test_cli_reads_leave_the_store_file_unchanged(tmp_path):
    store = tmp_path / "s.db"
    assert engram("--store", str(store), "add", "alice likes tea", "--user", "eve", "--no-wait").exit_code == 0
    before = digest(store)
    for command in READS[:-1]:
        result = engram("--store", str(store), *command)
        assert result.exit_code in (0, 2), result.output  # get/history of mem_x: NotFoundError
    assert digest(store) == before


# -- read-only media ----------------------------------------------------------------------------


def on_read_only_media(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `engram ARGS` with `folder` mounted read-only, in a private mount namespace
    (nothing outside the child sees the mount; needs root or user namespaces)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "ENGRAM_EMBEDDER": "fake",
           "ENGRAM_CONFIG": "", "COLUMNS": "200"}
    env.pop("ENGRAM_STORE", None)
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(folder),
                           sys.executable, "-m", "engramdb.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def read_only_media(tmp_path):
    probe = on_read_only_media(tmp_path, "--version")
    if probe.returncode != 0:
        pytest.skip(f"cannot mount read-only here: {probe.stderr.strip()[:200]}")
    return tmp_path


def test_cli_reads_a_store_on_read_only_media(read_only_media):
    folder = read_only_media / "media"
    folder.mkdir()
    store = folder / "engram.db"
    with Memory(store, embedder=FakeEmbedder()) as memory:
        memory.add(["alice likes tea", "alice likes rain"], user_id="alice")
    assert sorted(os.listdir(folder)) == ["engram.db"]  # closed cleanly: no -wal, no -shm
    listed = on_read_only_media(folder, "--store", str(store), "list", "--user", "alice", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["text"] for r in json.loads(listed.stdout)] == ["alice likes tea", "alice likes rain"]
    found = on_read_only_media(folder, "--store", str(store), "search", "rain", "--user", "alice", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["text"] == "alice likes rain"
    stats = on_read_only_media(folder, "--store", str(store), "stats", "--json")
    assert stats.returncode == 0 and json.loads(stats.stdout)["records"] == 2, stats.stderr
    added = on_read_only_media(folder, "--store", str(store), "add", "more", "--user", "alice")
    assert added.returncode == 2, added.stderr
    assert len(added.stderr.splitlines()) == 1 and "read-only" in added.stderr, added.stderr
    assert rows(store) == 2


def test_a_store_on_read_only_media_with_an_unfinished_log_says_read_only(read_only_media):
    """A -wal left without its -shm (a crash, a copy) cannot be read where nothing can be
    written: the error says so, rather than reading the file without the log."""
    folder = read_only_media / "media"
    folder.mkdir()
    store = folder / "engram.db"
    memory = Memory(store, embedder=FakeEmbedder())
    memory.add("alice likes tea", user_id="alice")
    conn = memory.store._conn()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    memory.add("alice likes rain", user_id="alice")  # only in the -wal
    copy = read_only_media / "copy"
    copy.mkdir()
    for name in ("engram.db", "engram.db-wal"):
        (copy / name).write_bytes((folder / name).read_bytes())
    memory.close()
    listed = on_read_only_media(copy, "--store", str(copy / "engram.db"), "list", "--user", "alice")
    assert listed.returncode == 1, listed.stdout + listed.stderr
    assert "read-only" in listed.stderr and "-wal" in listed.stderr, listed.stderr
