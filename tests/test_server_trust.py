"""What an agent and an untrusted client can rely on from the server: MCP tools that say
what they do and ask before they erase, `remember` with speakers, dates and ids, a default
user, errors as tool results; REST inputs that get a typed 4xx (never a 500, never a
server path), JSON accepted whatever the content type says, one spelling per tenant."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import pytest
from click.testing import CliRunner
from mcp import Client, StdioServerParameters
from server_helpers import over_mcp, start_deployment, stop_deployment

from engramdb.cli import main
from engramdb.errors import InvalidInputError

ENV = {"ENGRAM_CONFIG": None, "ENGRAM_STORE": None, "ENGRAM_KEYS": None, "ENGRAM_EMBEDDER": "fake",
       "COLUMNS": "200"}


@pytest.fixture
def server(tmp_path):
    live, deployment = start_deployment(tmp_path)
    yield deployment
    stop_deployment(live, deployment)


def text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def stored(server, user: str = "alice") -> list[dict]:
    return server.client("acme").get("/v1/memories", params={"user_id": user, "limit": 50}).json()["records"]


# -- MCP -----------------------------------------------------------------------------------


def test_tools_say_whether_they_read_write_or_erase(server):
    async def calls(client):
        return {t.name: t for t in (await client.list_tools()).tools}

    tools = over_mcp(server, "acme", calls)
    for name in ("recall", "context", "list_memories"):
        hints = tools[name].annotations
        assert hints.read_only_hint is True and hints.idempotent_hint is True, name
        assert hints.open_world_hint is False, name
    remember, forget = tools["remember"].annotations, tools["forget"].annotations
    assert remember.read_only_hint is False and remember.destructive_hint is False
    assert remember.idempotent_hint is False and remember.open_world_hint is False
    assert forget.read_only_hint is False and forget.destructive_hint is True and forget.idempotent_hint is True
    assert "confirm" in tools["forget"].input_schema["properties"]
    assert all(t.annotations.title for t in tools.values())


def test_forget_erases_nothing_without_an_explicit_confirmation(server):
    acme = server.client("acme")
    ids = [r["id"] for r in acme.post("/v1/memories", json={"messages": ["one", "two"], "user_id": "alice"})
           .json()["records"]]

    async def calls(client):
        return [await client.call_tool("forget", {"user_id": "alice"}),
                await client.call_tool("forget", {"user_id": "alice", "confirm": False}),
                await client.call_tool("forget", {"user_id": "alice", "memory_id": ids[0]}),
                await client.call_tool("forget", {"user_id": "alice", "confirm": "yes"})]

    for refused in over_mcp(server, "acme", calls):
        assert refused.is_error
    assert "UsageError" in text(over_mcp(server, "acme", lambda c: c.call_tool("forget", {"user_id": "alice"})))
    assert [r["id"] for r in stored(server)] == ids

    one = over_mcp(server, "acme", lambda c: c.call_tool("forget", {"user_id": "alice", "memory_id": ids[0],
                                                                     "confirm": True}))
    assert one.structured_content == {"forgotten": 1} and [r["id"] for r in stored(server)] == ids[1:]
    rest = over_mcp(server, "acme", lambda c: c.call_tool("forget", {"user_id": "alice", "confirm": True}))
    assert rest.structured_content == {"forgotten": 1} and stored(server) == []


def test_remember_takes_messages_with_speakers_dates_and_ids(server):
    messages = [
        {"role": "user", "content": "I moved to Lisbon", "name": "Alice", "id": "m1",
         "timestamp": "2024-05-01T10:00:00Z"},
        {"role": "assistant", "content": "Lisbon is lovely in May", "id": "m2", "timestamp": "2024-05-01T10:00:05Z"},
        "a plain string turn",
    ]
    result = over_mcp(server, "acme", lambda c: c.call_tool("remember", {"messages": messages, "user_id": "alice",
                                                                          "session_id": "s1"}))
    assert not result.is_error, text(result)
    assert len(result.structured_content["ids"]) == 3
    records = stored(server)
    assert [(r["text"], r["role"], r["name"], r["sources"][0] if r["sources"] else None) for r in records[:2]] == [
        ("I moved to Lisbon", "user", "Alice", "m1"), ("Lisbon is lovely in May", "assistant", None, "m2")]
    assert records[0]["created_at"] == "2024-05-01T10:00:00.000000Z" and records[0]["session_id"] == "s1"
    assert records[2]["text"] == "a plain string turn"

    single = over_mcp(server, "acme", lambda c: c.call_tool("remember", {
        "text": "I am Bob's sister", "user_id": "carol", "name": "Carol", "timestamp": "2023-01-02T03:04:05Z"}))
    (carol,) = stored(server, "carol")
    assert not single.is_error and carol["name"] == "Carol" and carol["created_at"].startswith("2023-01-02T03:04:05")


@pytest.mark.parametrize("arguments,expected", [
    ({"user_id": "alice"}, "InvalidInputError"),  # neither text nor messages
    ({"text": "x", "messages": ["y"], "user_id": "alice"}, "InvalidInputError"),
    ({"messages": [], "user_id": "alice"}, "InvalidInputError"),
    ({"messages": [{"content": "x", "timestamp": "last tuesday-ish"}], "user_id": "alice"}, "timestamp"),
    ({"messages": ["fine", {"content": "x", "role": "robot"}], "user_id": "alice"}, "role"),
    ({"messages": [{"content": "x", "colour": "red"}], "user_id": "alice"}, "colour"),
    ({"text": "x"}, "user_id"),  # a key without a default user: the model must say whose memory
])
def test_remember_refuses_bad_input_as_a_tool_error_storing_nothing(server, arguments, expected):
    result = over_mcp(server, "acme", lambda c: c.call_tool("remember", arguments))
    assert result.is_error and expected in text(result), text(result)
    assert server.client("acme").get("/v1/stats").json()["records"] == 0


def test_tool_failures_are_results_and_the_server_keeps_serving(server):
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
               "Authorization": f"Bearer {server.secrets['acme']}"}

    def raw(arguments: bytes, name: str = "recall") -> dict:
        body = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"%s","arguments":%s}}' % (
            name.encode(), arguments)
        response = httpx.post(server.url + "/mcp", content=body, headers=headers, timeout=30)
        assert response.status_code < 500, response.text
        return response.json()

    failures = [
        raw(b'{"query":"x","user_id":"alice","limit":0}'),
        raw(b'{"query":"x","user_id":"alice","filters":{"nope":1}}'),
        raw(b'{"query":"x","user_id":"' + b"u" * 5000 + b'"}'),
        raw(b'{"query":"x","user_id":"alice","filters":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}"),
        raw(b'{"user_id":"alice","memory_id":"mem_nope","confirm":true}', "forget"),
        raw(b'{"text":"x","user_id":"alice","metadata":{"k":NaN}}', "remember"),
        raw(b'{"query":"x","user_id":"alice","filters":{"metadata.k":1e999}}'),
        raw(b'{"text":"x","user_id":"alice","metadata":[1]}', "remember"),
        raw(b'{}', "no_such_tool"),
    ]
    for failure in failures:
        assert failure["result"]["isError"] is True, failure
    typed = [failure["result"]["content"][0]["text"] for failure in failures[:-2]]
    assert all(any(kind in t for kind in ("InvalidInputError", "NotFoundError")) for t in typed), typed
    # Text that is not valid Unicode never reaches a tool: JSON-RPC's own parse error.
    assert "error" in raw(b'{"query":"a\\ud800b","user_id":"alice"}')
    ok = over_mcp(server, "acme", lambda c: c.call_tool("recall", {"query": "anything", "user_id": "alice"}))
    assert not ok.is_error and ok.structured_content == {"hits": []}


def stdio(tmp_path, *extra: str) -> StdioServerParameters:
    env = {**os.environ, "ENGRAM_EMBEDDER": "fake"}
    env.pop("ENGRAM_CONFIG", None)
    store = f"sqlite:///{tmp_path}/local.db"
    return StdioServerParameters(command=sys.executable, env=env,
                                 args=["-m", "engramdb.cli", "--store", store, "serve", "--mcp-stdio", *extra])


def test_stdio_with_a_user_needs_no_user_id_and_reaches_no_other_user(tmp_path):
    async def run():
        async with Client(stdio(tmp_path, "--user", "alice")) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            return (tools,
                    await client.call_tool("remember", {"text": "I run on Tuesdays"}),
                    await client.call_tool("recall", {"query": "run Tuesdays"}),
                    await client.call_tool("context", {"query": "when does she run"}),
                    await client.call_tool("list_memories", {}),
                    await client.call_tool("remember", {"text": "bob's note", "user_id": "bob"}),
                    await client.call_tool("recall", {"query": "run", "user_id": "bob"}),
                    await client.call_tool("forget", {"user_id": "bob", "confirm": True}))

    tools, remembered, recalled, block, listed, as_bob, recall_bob, forget_bob = asyncio.run(run())
    assert "user_id" not in tools["remember"].input_schema.get("required", [])
    assert not remembered.is_error, text(remembered)
    assert [h["text"] for h in recalled.structured_content["hits"]] == ["I run on Tuesdays"]
    assert "I run on Tuesdays" in text(block)
    assert [r["user_id"] for r in listed.structured_content["records"]] == ["alice"]
    for refused in (as_bob, recall_bob, forget_bob):
        assert refused.is_error and "PermissionDeniedError" in text(refused), text(refused)
    listing = CliRunner(env=ENV).invoke(main, ["--store", f"sqlite:///{tmp_path}/local.db", "stats", "--json"])
    assert json.loads(listing.stdout)["users"] == 1


def test_user_is_for_stdio_only(tmp_path):
    result = CliRunner(env=ENV).invoke(main, ["--store", f"sqlite:///{tmp_path}/x.db", "serve", "--user", "alice"])
    assert result.exit_code == 2 and "--mcp-stdio" in result.stderr


# -- REST inputs ---------------------------------------------------------------------------


def post_raw(client, path: str, raw: bytes, content_type: str | None = "application/json", method: str = "POST"):
    headers = {} if content_type is None else {"content-type": content_type}
    return client.request(method, path, content=raw, headers=headers)


def assert_error(response, status: int, kind: str, text: str = "") -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["type"] == kind and text in body["error"]["message"], body
    return body["error"]


@pytest.mark.parametrize("path,raw", [
    ("/v1/memories", b'{"messages": "a\\ud800b", "user_id": "alice"}'),
    ("/v1/memories", b'{"messages": [{"content": "x", "name": "\\udc00"}], "user_id": "alice"}'),
    ("/v1/memories", b'{"messages": [{"content": "x", "id": "\\ud83d"}], "user_id": "alice"}'),
    ("/v1/memories", b'{"messages": "x", "user_id": "alice", "metadata": {"\\udc00": 1}}'),
    ("/v1/memories", b'{"messages": "x", "user_id": "alice", "metadata": {"k": ["\\udfff"]}}'),
    ("/v1/memories", b'{"messages": "x", "user_id": "al\\ud800ice"}'),
    ("/v1/memories/search", b'{"query": "a\\ud800b", "user_id": "alice"}'),
    ("/v1/memories/search", b'{"query": "x", "user_id": "alice", "filters": {"metadata.k": "\\ud800"}}'),
    ("/v1/context", b'{"query": "a\\ud800b", "user_id": "alice"}'),
    ("/v1/forget", b'{"user_id": "\\ud800", "confirm": true}'),
    ("/v1/export", b'{"user_id": "alice", "session_id": "\\ud800"}'),
])
def test_lone_surrogates_are_a_422_naming_the_field(server, path, raw):
    acme = server.client("acme")
    error = assert_error(post_raw(acme, path, raw), 422, "InvalidInputError", "not valid Unicode")
    assert "\\ud" not in error["message"].lower()  # the value is not echoed
    assert acme.get("/v1/stats").json()["records"] == 0


def test_a_lone_surrogate_in_an_update_changes_nothing(server):
    acme = server.client("acme")
    (record,) = acme.post("/v1/memories", json={"messages": "I live in Porto", "user_id": "alice"}).json()["records"]
    response = post_raw(acme, f"/v1/memories/{record['id']}", b'{"text": "Lis\\udc00bon"}', method="PATCH")
    assert_error(response, 422, "InvalidInputError", "text")
    assert acme.get(f"/v1/memories/{record['id']}").json()["text"] == "I live in Porto"


@pytest.mark.parametrize("path", ["/v1/memories", "/v1/memories/search", "/v1/context", "/v1/export"])
def test_a_body_that_is_not_utf8_is_a_400(server, path):
    acme = server.client("acme")
    raw = b'{"messages": "caf\xe9", "query": "caf\xe9", "user_id": "alice"}'
    assert_error(post_raw(acme, path, raw), 400, "InvalidInputError", "UTF-8")
    assert acme.get("/v1/stats").json()["records"] == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "text/plain; charset=utf-8"])
def test_json_bodies_are_read_whatever_the_content_type_says(server, content_type):
    acme = server.client("acme")
    added = post_raw(acme, "/v1/memories", b'{"messages": "I moved to Lisbon", "user_id": "alice"}', content_type)
    assert added.status_code == 201, added.text
    found = post_raw(acme, "/v1/memories/search", b'{"query": "Lisbon", "user_id": "alice"}', content_type)
    assert [h["text"] for h in found.json()["hits"]] == ["I moved to Lisbon"]
    rid = added.json()["records"][0]["id"]
    patched = post_raw(acme, f"/v1/memories/{rid}", b'{"text": "I moved to Porto"}', content_type, method="PATCH")
    assert patched.status_code == 200 and patched.json()["text"] == "I moved to Porto"
    assert_error(post_raw(acme, "/v1/memories", b"messages=hi&user_id=alice", content_type), 400,
                 "InvalidInputError", "not valid JSON")


def test_the_documented_curl_example_works(server):
    """docs/cli.md: `curl -s localhost:8765/v1/memories -H "Authorization: Bearer $KEY" -d '{…}'`
    (curl's -d sends application/x-www-form-urlencoded)."""
    import shutil
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("no curl on this machine")
    out = subprocess.run(["curl", "-s", server.url + "/v1/memories", "-H", f"Authorization: Bearer {server.secrets['acme']}",
                          "-d", '{"messages": "I moved to Lisbon", "user_id": "alice"}'],
                         capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout)["records"][0]["text"] == "I moved to Lisbon"


@pytest.mark.parametrize("raw", [
    b"{not a cube\n",
    b'{"format": "engram-cube"}\n',
    b'{"format": "engram-cube", "version": 1}\n{"record": 5}\n',
    b'{"format": "engram-cube", "version": 1}\nnot json at all\n',
    b'{"format": "other"}\n',
    b"\xff\xfe\x00garbage",
])
def test_import_errors_name_no_server_path(server, raw, tmp_path):
    import tempfile

    response = server.client("acme").post("/v1/import", content=raw)
    error = assert_error(response, 422, "InvalidInputError")
    message = error["message"]
    assert tempfile.gettempdir() not in message and "engram-import" not in message and "/" not in message, message
    assert "cube" in message


def test_tenants_are_spelt_one_way(tmp_path):
    from engramdb.server.keys.sqlite import SQLiteKeyStore

    keys = SQLiteKeyStore(tmp_path / "engram.keys.db")
    try:
        for padded in ("acme ", " acme", "acme\t", "ac\nme"):
            with pytest.raises(InvalidInputError, match="tenant"):
                keys.create(padded)
        keys.create("acme")
        assert [k.tenant for k in keys.list()] == ["acme"]
        with pytest.raises(InvalidInputError, match="tenant"):
            keys.list("acme ")
    finally:
        keys.close()
    store = f"sqlite:///{tmp_path}/engram.db"
    made = CliRunner(env=ENV).invoke(main, ["--store", store, "keys", "create", "--tenant", "acme "])
    assert made.exit_code == 2 and "tenant" in made.stderr
    served = CliRunner(env=ENV).invoke(main, ["--store", store, "serve", "--mcp-stdio", "--tenant", " acme"])
    assert served.exit_code == 2 and "tenant" in served.stderr


def test_skip_empty_leaves_out_empty_turns_or_says_why_it_cannot(server):
    import inspect

    from engramdb import Memory

    acme = server.client("acme")
    batch = {"messages": ["first", {"content": "   "}, "", "last"], "user_id": "alice"}
    strict = acme.post("/v1/memories", json=batch)
    assert_error(strict, 422, "InvalidInputError", "messages[1]")  # the strict default: nothing stored
    assert acme.get("/v1/stats").json()["records"] == 0
    lenient = acme.post("/v1/memories", json={**batch, "skip_empty": True})
    if "skip_empty" in inspect.signature(Memory.add).parameters:
        assert lenient.status_code == 201, lenient.text
        assert [r["text"] for r in lenient.json()["records"]] == ["first", "last"]
        assert lenient.json()["skipped"] == 2
    else:  # an engramdb without it: a clear 400, nothing stored
        assert_error(lenient, 400, "UsageError", "skip_empty")
        assert acme.get("/v1/stats").json()["records"] == 0
    assert_error(acme.post("/v1/memories", json={**batch, "skip_empty": "yes"}), 422, "InvalidInputError",
                 "skip_empty")


def test_a_failing_store_answers_503_naming_no_server_path(tmp_path):
    import sqlite3

    from server_helpers import LiveServer

    from engramdb.config import Config
    from engramdb.providers.fake import FakeEmbedder
    from engramdb.server.auth import Authenticator
    from engramdb.server.keys.sqlite import SQLiteKeyStore
    from engramdb.server.rest import create_app, without_paths
    from engramdb.server.tenants import TenantRegistry

    keys = SQLiteKeyStore(tmp_path / "engram.keys.db")
    secret = keys.create("acme").secret
    registry = TenantRegistry(tmp_path / "engram.db", Config(busy_timeout_ms=50), embedder=FakeEmbedder())
    live = LiveServer(create_app(registry, Authenticator(keys))).start()
    client = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    try:
        assert client.post("/v1/memories", json={"messages": "first", "user_id": "alice"}).status_code == 201
        (tenant_file,) = (tmp_path / "engram.tenants").glob("*.db")
        locker = sqlite3.connect(tenant_file, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            response = client.post("/v1/memories", json={"messages": "second", "user_id": "alice"})
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        error = assert_error(response, 503, "StorageError")
        assert str(tmp_path) not in error["message"] and "engram.tenants" not in error["message"], error
        assert "locked" in error["message"]
    finally:
        client.close()
        live.stop()
    assert without_paths("read from /srv/data/engram.tenants/t_1.db failed: disk I/O error") == (
        "read from … failed: disk I/O error")
    assert without_paths("cannot connect to postgresql://engram@db:5432/engram") == (
        "cannot connect to postgresql://engram@db:5432/engram")


@pytest.mark.parametrize("path,raw,field", [
    ("/v1/memories", b'{"messages": "x", "user_id": "alice", "metadata": {"k": NaN}}', "metadata.k"),
    ("/v1/memories", b'{"messages": "x", "user_id": "alice", "metadata": {"k": [1, Infinity]}}', "metadata.k[1]"),
    ("/v1/memories/search", b'{"query": "x", "user_id": "alice", "filters": {"metadata.k": -Infinity}}',
     "filters.metadata.k"),
])
def test_nan_and_infinity_are_a_422(server, path, raw, field):
    acme = server.client("acme")
    assert_error(post_raw(acme, path, raw), 422, "InvalidInputError", f"{field} is not a finite number")
    assert acme.get("/v1/stats").json()["records"] == 0


@pytest.mark.parametrize("filters,text", [
    ('{"metadata.k": "\\ud800"}', "not valid Unicode"),
    ('{"metadata.k": NaN}', "not a finite number"),
    ('{"metadata.a": {"in": ' + "[" * 3000 + "]" * 3000 + "}}", "nests deeper"),
    ('{"a":' * 2000 + "1" + "}" * 2000, "nests deeper"),
    ('{"metadata.a": {"in": ' + "[" * 40 + "]" * 40 + "}}", "nests deeper"),
])
def test_filters_in_a_query_string_are_checked_as_bodies_are(server, filters, text):
    response = server.client("acme").get("/v1/memories", params={"user_id": "alice", "filters": filters})
    assert_error(response, 422, "InvalidInputError", text)
