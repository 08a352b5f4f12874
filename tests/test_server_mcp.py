"""MCP, driven by the SDK's own client: streamable HTTP against a real server on
127.0.0.1 (with keys), and stdio against `engram serve --mcp-stdio` in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from server_helpers import start_deployment, stop_deployment

TOOLS = {"remember", "recall", "forget", "list_memories", "context"}


@pytest.fixture
def server(tmp_path):
    live, deployment = start_deployment(tmp_path)
    yield deployment
    stop_deployment(live, deployment)


def over_http(server, who: str, calls):
    """Run `calls(client)` in an MCP session authenticated as `who`."""

    async def run():
        headers = {"Authorization": f"Bearer {server.secrets[who]}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with Client(streamable_http_client(server.url + "/mcp", http_client=http)) as client:
                return await calls(client)

    return asyncio.run(run())


def text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_tools_over_streamable_http(server):
    async def calls(client):
        names = {t.name for t in (await client.list_tools()).tools}
        stored = await client.call_tool("remember", {"text": "I am allergic to peanuts", "user_id": "alice",
                                                     "session_id": "s1"})
        await client.call_tool("remember", {"text": "My sister is called Ana", "user_id": "alice"})
        recalled = await client.call_tool("recall", {"query": "peanuts allergy", "user_id": "alice", "limit": 1})
        block = await client.call_tool("context", {"query": "what is alice allergic to? peanuts",
                                                   "user_id": "alice"})
        listed = await client.call_tool("list_memories", {"user_id": "alice", "limit": 1})
        rest = await client.call_tool("list_memories", {"user_id": "alice", "limit": 1, "offset": 1})
        one = await client.call_tool("forget", {"user_id": "alice", "memory_id": stored.structured_content["ids"][0],
                                                 "confirm": True})
        scope = await client.call_tool("forget", {"user_id": "alice", "confirm": True})
        after = await client.call_tool("list_memories", {"user_id": "alice"})
        return names, stored, recalled, block, listed, rest, one, scope, after

    names, stored, recalled, block, listed, rest, one, scope, after = over_http(server, "acme", calls)
    assert TOOLS <= names
    assert not stored.is_error and len(stored.structured_content["ids"]) == 1
    hits = recalled.structured_content["hits"]
    assert [h["text"] for h in hits] == ["I am allergic to peanuts"] and hits[0]["session_id"] == "s1"
    assert "I am allergic to peanuts" in text(block)
    assert [r["text"] for r in listed.structured_content["records"]] == ["I am allergic to peanuts"]
    assert listed.structured_content["next_offset"] == 1
    assert [r["text"] for r in rest.structured_content["records"]] == ["My sister is called Ana"]
    assert one.structured_content == {"forgotten": 1} and scope.structured_content == {"forgotten": 1}
    assert after.structured_content["records"] == []
    # What MCP wrote is what REST reads: one store per tenant.
    stats = server.client("acme").get("/v1/stats").json()
    assert stats["records"] == 0


def test_tool_errors_name_the_engram_error(server):
    async def calls(client):
        return (await client.call_tool("forget", {"user_id": "alice", "memory_id": "mem_nope", "confirm": True}),
                await client.call_tool("recall", {"query": "   ", "user_id": "alice"}),
                await client.call_tool("recall", {"query": "x", "user_id": "alice", "limit": "many"}))

    missing, empty, wrong_type = over_http(server, "acme", calls)
    assert missing.is_error and "NotFoundError" in text(missing)
    assert empty.is_error and "InvalidInputError" in text(empty)
    assert wrong_type.is_error and "limit" in text(wrong_type)


def test_read_only_key_may_recall_but_not_remember_or_forget(server):
    server.client("acme").post("/v1/memories", json={"messages": "the wifi password is hunter2", "user_id": "alice"})

    async def calls(client):
        return (await client.call_tool("recall", {"query": "wifi password", "user_id": "alice"}),
                await client.call_tool("remember", {"text": "sneaky", "user_id": "alice"}),
                await client.call_tool("forget", {"user_id": "alice", "confirm": True}))

    recalled, remembered, forgot = over_http(server, "acme-ro", calls)
    assert recalled.structured_content["hits"][0]["text"] == "the wifi password is hunter2"
    assert remembered.is_error and "PermissionDeniedError" in text(remembered)
    assert forgot.is_error and "PermissionDeniedError" in text(forgot)
    assert server.client("acme").get("/v1/stats").json()["records"] == 1


@pytest.mark.parametrize("authorization", [None, "Bearer egk_nope", "Basic x"])
def test_mcp_over_http_without_a_valid_key_is_401(server, authorization):
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(server.url + "/mcp", json=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "AuthenticationError"


def test_mcp_over_stdio_with_the_cli(tmp_path):
    store = f"sqlite:///{tmp_path}/local.db"
    env = {**os.environ, "ENGRAM_EMBEDDER": "fake"}
    env.pop("ENGRAM_CONFIG", None)
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "engramdb.cli", "--store", store, "serve", "--mcp-stdio"], env=env)

    async def run():
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            await client.call_tool("remember", {"text": "I run on Tuesdays", "user_id": "alice"})
            recalled = await client.call_tool("recall", {"query": "run Tuesdays", "user_id": "alice"})
            block = await client.call_tool("context", {"query": "when does alice run", "user_id": "alice"})
            return names, recalled, block

    names, recalled, block = asyncio.run(run())
    assert TOOLS <= names
    assert [h["text"] for h in recalled.structured_content["hits"]] == ["I run on Tuesdays"]
    assert "I run on Tuesdays" in text(block)
    # The stdio server wrote to the local store the CLI reads.
    from click.testing import CliRunner

    from engramdb.cli import main

    out = CliRunner(env={"ENGRAM_EMBEDDER": "fake", "ENGRAM_CONFIG": None}).invoke(
        main, ["--store", store, "list", "--user", "alice", "--json"])
    assert [r["text"] for r in json.loads(out.stdout)] == ["I run on Tuesdays"]
