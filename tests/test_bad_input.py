"""Every bad input raises a typed EngramError, and the store is untouched afterwards."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from contextlib import contextmanager

import pytest

from engramdb import (
    Config,
    ConfigError,
    EngramError,
    InvalidInputError,
    Memory,
    NotFoundError,
    ProviderError,
    StorageError,
    UsageError,
)
from engramdb.providers.fake import FakeEmbedder


def snapshot(memory: Memory, users=("alice", "bob")) -> tuple[int, str]:
    """Record count plus a hash of every record and history entry."""
    rows = []
    for user in users:
        for record in memory.list(user_id=user, limit=1000):
            rows.append(record.to_dict())
            rows.extend(v.to_dict() for v in memory.history(record.id))
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    return memory.stats()["records"], digest


@pytest.fixture
def filled(mem):
    (first,) = mem.add({"id": "m1", "content": "alice likes tea"}, user_id="alice", session_id="s1").records
    mem.add(["alice likes cake", "alice likes rain"], user_id="alice", session_id="s2")
    mem.add("bob likes coffee", user_id="bob")
    mem.update(first.id, "alice likes green tea")
    before = snapshot(mem)
    assert before[0] == 4
    yield mem, first.id
    assert snapshot(mem) == before  # every test in this module leaves the store as it was


def test_the_error_tree():
    for error in (InvalidInputError, NotFoundError, ConfigError):
        assert issubclass(error, UsageError)
    for error in (UsageError, ProviderError, StorageError):
        assert issubclass(error, EngramError)
    assert issubclass(InvalidInputError, ValueError)
    assert str(NotFoundError("no memory with id 'x'")) == "no memory with id 'x'"


BAD_MESSAGES = [
    pytest.param(5, id="int"),
    pytest.param(None, id="none"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param([], id="empty-list"),
    pytest.param([1, 2], id="list-of-ints"),
    pytest.param(["ok", 3], id="list-with-int"),
    pytest.param({"role": "user"}, id="dict-without-content"),
    pytest.param({"content": 12}, id="content-int"),
    pytest.param({"content": ["a"]}, id="content-list"),
    pytest.param("", id="empty-string"),
    pytest.param("   \n\t", id="whitespace"),
    pytest.param({"content": "  "}, id="whitespace-content"),
    pytest.param({"content": "x", "text": "y"}, id="unknown-key"),
    pytest.param({"content": "x", "role": "robot"}, id="bad-role"),
    pytest.param({"content": "x", "role": None}, id="role-none"),
    pytest.param({"content": "x", "timestamp": "yesterday"}, id="bad-timestamp"),
    pytest.param({"content": "x", "timestamp": "2024-13-01"}, id="bad-month"),
    pytest.param({"content": "x", "timestamp": 1700000000}, id="timestamp-int"),
    pytest.param({"content": "x", "timestamp": ""}, id="timestamp-empty"),
    pytest.param("x" * 100_001, id="huge"),
    pytest.param("hello\x00world", id="nul"),
    pytest.param([{"id": "a", "content": "x"}, {"id": "a", "content": "y"}], id="duplicate-ids"),
    pytest.param([{"id": 7, "content": "x"}, {"id": "7", "content": "y"}], id="duplicate-ids-int-str"),
    pytest.param({"content": "x", "id": ""}, id="empty-id"),
    pytest.param({"content": "x", "id": True}, id="bool-id"),
    pytest.param({"content": "x", "name": {"first": "a"}}, id="bad-name"),
    pytest.param(["fine", "also fine", {"content": ""}], id="bad-last-of-batch"),
]


@pytest.mark.parametrize("messages", BAD_MESSAGES)
def test_bad_messages(filled, messages):
    mem, _ = filled
    calls = mem.embedder.calls
    with pytest.raises(InvalidInputError):
        mem.add(messages, user_id="alice")
    assert mem.embedder.calls == calls  # refused before any work


def test_too_many_messages(db_path, fake_embedder):
    with Memory(db_path, embedder=fake_embedder, config=Config(max_messages_per_add=3)) as memory:
        with pytest.raises(InvalidInputError, match="at most 3"):
            memory.add(["a", "b", "c", "d"], user_id="alice")
        assert memory.stats()["records"] == 0
        assert len(memory.add(["a", "b", "c"], user_id="alice")) == 3


def test_content_limit_follows_config(db_path, fake_embedder):
    with Memory(db_path, embedder=fake_embedder, config=Config(max_message_chars=10)) as memory:
        with pytest.raises(InvalidInputError, match="limit is 10"):
            memory.add("x" * 11, user_id="alice")
        assert memory.stats()["records"] == 0


def test_content_at_limit_is_accepted(db_path, fake_embedder):
    with Memory(db_path, embedder=fake_embedder, config=Config(max_message_chars=10)) as memory:
        assert len(memory.add("x" * 10, user_id="alice")) == 1


@pytest.mark.parametrize("user_id", [None, "", "   ", 5, ["alice"], "x" * 257, "a\x00b"])
def test_bad_user_id(filled, user_id):
    mem, rid = filled
    with pytest.raises(InvalidInputError):
        mem.add("hello", user_id=user_id)
    with pytest.raises(InvalidInputError):
        mem.search("hello", user_id=user_id)
    with pytest.raises(InvalidInputError):
        mem.list(user_id=user_id)
    with pytest.raises(InvalidInputError):
        mem.forget(user_id=user_id)
    with pytest.raises(InvalidInputError):
        mem.context("hello", user_id=user_id)


def test_missing_user_id_is_a_signature_error(filled):
    mem, _ = filled
    with pytest.raises(TypeError):
        mem.add("hello")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        mem.forget()  # type: ignore[call-arg]


@pytest.mark.parametrize("scope", [{"session_id": ""}, {"agent_id": 3}, {"session_id": "x" * 300}])
def test_bad_session_or_agent(filled, scope):
    mem, _ = filled
    with pytest.raises(InvalidInputError):
        mem.add("hello", user_id="alice", **scope)
    with pytest.raises(InvalidInputError):
        mem.forget(user_id="alice", **scope)


@pytest.mark.parametrize("limit", [0, -1, True, "5", 2.0, None, 1001])
def test_bad_limit(filled, limit):
    mem, _ = filled
    with pytest.raises(InvalidInputError):
        mem.search("tea", user_id="alice", limit=limit)
    with pytest.raises(InvalidInputError):
        mem.list(user_id="alice", limit=limit)


@pytest.mark.parametrize("offset", [-1, "1", False])
def test_bad_offset(filled, offset):
    mem, _ = filled
    with pytest.raises(InvalidInputError):
        mem.list(user_id="alice", offset=offset)


@pytest.mark.parametrize("query", ["", "  ", None, 5, "q" * 10_001])
def test_bad_query(filled, query):
    mem, _ = filled
    with pytest.raises(InvalidInputError):
        mem.search(query, user_id="alice")


@pytest.mark.parametrize("budget", [0, -5, "100", True])
def test_bad_context_budget(filled, budget):
    mem, _ = filled
    with pytest.raises(InvalidInputError):
        mem.context("tea", user_id="alice", budget_tokens=budget)


BAD_FILTERS = [
    pytest.param({"colour": "red"}, id="unknown-key"),
    pytest.param({"user_id": "bob"}, id="user_id-widens"),
    pytest.param({"user_id": {"in": ["alice", "bob"]}}, id="user_id-in"),
    pytest.param({"tenant": "x"}, id="tenant"),
    pytest.param({"text": "tea"}, id="text"),
    pytest.param({"role": {"like": "u%"}}, id="unknown-op"),
    pytest.param({"role": {}}, id="empty-ops"),
    pytest.param({"role": {"in": []}}, id="empty-in"),
    pytest.param({"role": {"in": "user"}}, id="in-not-list"),
    pytest.param({"role": {"in": [["user"]]}}, id="in-nested"),
    pytest.param({"role": ["user"]}, id="list-value"),
    pytest.param({"metadata.": "x"}, id="empty-metadata-key"),
    pytest.param({"metadata.a.b'": "x"}, id="metadata-injection"),
    pytest.param({"created_at": {"gte": "last week"}}, id="bad-date"),
    pytest.param({"source": {"in": ["m1"]}}, id="source-in"),
    pytest.param({1: "x"}, id="non-str-key"),
    pytest.param(["role", "user"], id="not-a-dict"),
]


@pytest.mark.parametrize("filters", BAD_FILTERS)
def test_bad_filters(filled, filters):
    mem, _ = filled
    with pytest.raises(InvalidInputError):
        mem.search("tea", user_id="alice", filters=filters)
    with pytest.raises(InvalidInputError):
        mem.list(user_id="alice", filters=filters)


@pytest.mark.parametrize("bad_id", ["mem_doesnotexist", "", 5, None, "x" * 300])
def test_unknown_or_bad_ids(filled, bad_id):
    mem, _ = filled
    expected = NotFoundError if bad_id == "mem_doesnotexist" else InvalidInputError
    with pytest.raises(expected):
        mem.get(bad_id)
    with pytest.raises(expected):
        mem.update(bad_id, "new text")
    with pytest.raises(expected):
        mem.delete(bad_id)
    with pytest.raises(expected):
        mem.history(bad_id)


@pytest.mark.parametrize("text", ["", "  ", None, 3, "x" * 100_001])
def test_bad_update_text(filled, text):
    mem, rid = filled
    with pytest.raises(InvalidInputError):
        mem.update(rid, text)


@pytest.mark.parametrize("metadata", [{"x": object()}, {"x": {1, 2}}, "not a dict", ["a"], {"x": "y" * 70_000}])
def test_bad_metadata(filled, metadata):
    mem, rid = filled
    with pytest.raises(InvalidInputError):
        mem.add("hello", user_id="alice", metadata=metadata)
    with pytest.raises(InvalidInputError):
        mem.update(rid, "alice likes black tea", metadata=metadata)


def test_bad_reset_and_export(filled, tmp_path):
    mem, _ = filled
    with pytest.raises(UsageError):
        mem.reset()
    with pytest.raises(InvalidInputError):
        mem.export(tmp_path / "x.jsonl", user_id="")
    with pytest.raises(StorageError):
        mem.export(tmp_path / "no-such-dir" / "x.jsonl", user_id="alice")


# -- stores and configuration -----------------------------------------------------------


@pytest.mark.parametrize("url", ["postgresql://x:port/db", "postgres://u@h/db?bogus=1", "mysql://x", "sqlite://x", "sqlite:///",
                                 ":memory:", ""])
def test_bad_store_urls(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError):
        Memory(url, embedder=FakeEmbedder())
    assert os.listdir(tmp_path) == []


def test_bad_constructor_arguments(tmp_path):
    with pytest.raises(ConfigError):
        Memory(123, embedder=FakeEmbedder())  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Memory(tmp_path / "a.db", config={"embedder": "fake"})  # type: ignore[arg-type]
    with Memory(tmp_path / "b.db", config=Config(embedder="no-such-model")) as memory:
        with pytest.raises(ConfigError, match="unknown embedder"):
            memory.add("hello", user_id="alice")
        assert memory.stats()["records"] == 0


def test_corrupt_database_file(tmp_path):
    path = tmp_path / "corrupt.db"
    garbage = os.urandom(4096)
    path.write_bytes(garbage)
    with pytest.raises(StorageError, match="corrupt"):
        Memory(path, embedder=FakeEmbedder())
    assert path.read_bytes() == garbage


def test_malformed_cube_imports_nothing(filled, tmp_path):
    mem, _ = filled
    path = tmp_path / "alice.jsonl"
    assert mem.export(path, user_id="alice") == 3
    lines = path.read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines[:2] + ['{"type": "record", "record": '] + lines[2:]) + "\n")
    with Memory(tmp_path / "target.db", embedder=FakeEmbedder()) as target:
        with pytest.raises(InvalidInputError, match="line 3"):
            target.import_(broken)
        assert target.stats()["records"] == 0
        bad_field = json.loads(lines[1])
        bad_field["record"]["surprise"] = 1
        for name, text in {
            "not-a-cube.jsonl": '{"format": "other"}\n',
            "newer.jsonl": json.dumps({**json.loads(lines[0]), "version": 99}) + "\n",
            "empty.jsonl": "",
            "extra-field.jsonl": "\n".join([lines[0], lines[2], json.dumps(bad_field)]) + "\n",
            "array.jsonl": lines[0] + "\n[1, 2]\n",
        }.items():
            (tmp_path / name).write_text(text)
            with pytest.raises(InvalidInputError):
                target.import_(tmp_path / name)
            assert target.stats()["records"] == 0
        with pytest.raises(InvalidInputError):
            target.import_(tmp_path / "missing.jsonl")
        with pytest.raises(InvalidInputError):
            target.import_(path, user_id="")
        assert target.stats()["records"] == 0
        assert target.import_(path) == 3  # the intact cube still imports


def test_broken_config_values(tmp_path):
    with pytest.raises(ConfigError):
        Config(candidates=0)
    with pytest.raises(ConfigError):
        Config(max_limit=-1)
    with pytest.raises(ConfigError):
        Config(rrf_k=True)
    with pytest.raises(ConfigError):
        Config(embedder="")
    with pytest.raises(ConfigError, match="unknown config keys"):
        Config.from_mapping({"candidate": 5})
    bad = tmp_path / "bad.toml"
    bad.write_text("[engram\nstore = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.load(bad, environ={})
    with pytest.raises(ConfigError, match="not found"):
        Config.load(tmp_path / "missing.toml", environ={})


# -- embedding servers ------------------------------------------------------------------


def test_dead_embedding_server(tmp_path):
    config = Config(embedder="openai:x", embedder_base_url="http://127.0.0.1:9", embedder_timeout_s=5)
    with Memory(tmp_path / "dead.db", config=config) as memory:
        with pytest.raises(ProviderError):
            memory.add("hello", user_id="alice")
        with pytest.raises(ProviderError):
            memory.search("hello", user_id="alice")
        assert memory.stats()["records"] == 0
        assert memory.list(user_id="alice") == []


class EmbeddingServer:
    """A tiny OpenAI-compatible /v1/embeddings server on a random local port."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[dict] = []
        server = self
        model = FakeEmbedder(dim=16)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if server.mode == "garbage":
                    payload = b"<html>not json"
                elif server.mode == "no-data":
                    payload = json.dumps({"object": "list"}).encode()
                elif server.mode == "short":
                    payload = json.dumps({"data": []}).encode()
                else:
                    vectors = model.embed(body["input"]).tolist()
                    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
                    data.reverse()  # the client must order by index
                    payload = json.dumps({"object": "list", "data": data, "model": body["model"]}).encode()
                self.send_response(500 if server.mode == "error" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@contextmanager
def embedding_server(mode: str = "ok"):
    server = EmbeddingServer(mode)
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(5)


def test_openai_embedder_over_real_http(tmp_path):
    with embedding_server() as server:
        config = Config(embedder="openai:test-embed", embedder_base_url=server.url, embedder_api_key="sk-test")
        with Memory(tmp_path / "http.db", config=config) as memory:
            memory.add(["the violin lesson is on friday", "buy more dog food", "call the plumber"],
                       user_id="alice")
            hits = memory.search("violin lesson", user_id="alice")
            assert hits[0].text == "the violin lesson is on friday"
            assert memory.stats()["embedder"] == "openai:test-embed"
            assert memory.embedder.dim == 16
        assert all(r["path"] == "/v1/embeddings" for r in server.requests)
        assert all(r["body"]["model"] == "test-embed" for r in server.requests)
        assert all(r["auth"] == "Bearer sk-test" for r in server.requests)
        assert ["the violin lesson is on friday", "buy more dog food", "call the plumber"] in [
            r["body"]["input"] for r in server.requests
        ]


@pytest.mark.parametrize("mode", ["garbage", "no-data", "short", "error"])
def test_bad_embedding_server_replies(tmp_path, mode):
    with embedding_server(mode) as server:
        config = Config(embedder="openai:test-embed", embedder_base_url=server.url)
        with Memory(tmp_path / "bad.db", config=config) as memory:
            with pytest.raises(ProviderError):
                memory.add("hello there", user_id="alice")
            assert memory.stats()["records"] == 0
        assert server.requests  # the server was really asked


def test_a_full_disk_is_a_storage_error_and_loses_nothing(tmp_path):
    """SQLite's max_page_count makes the database 'full' exactly as a full disk does."""
    mem = Memory(tmp_path / "full.db", embedder=FakeEmbedder())
    kept = mem.add([f"turn {i} about the garden" for i in range(20)], user_id="alice").ids
    conn = mem.store._conn()  # the connection this thread writes with
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StorageError, match="full"):
        mem.add(["x" * 50_000 + f" big turn {i}" for i in range(5)], user_id="alice")
    assert [r.id for r in mem.list(user_id="alice")] == kept
    assert mem.store.check_integrity() == "ok"
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert len(mem.add("after the disk was freed", user_id="alice")) == 1
    mem.close()
