"""Tenants: a client of one tenant tries every way to reach another's memories, over REST
and MCP, and finds nothing. Each tenant's data is in a store of its own, so these
tests hold whatever a handler does with the ids and filters it is given."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from server_helpers import start_deployment, stop_deployment

SECRET = "the acme vault code is 4711"


@pytest.fixture
def world(tmp_path):
    """acme stores alice's secrets; globex (another tenant) goes looking for them."""
    live, server = start_deployment(tmp_path)
    acme = server.client("acme")
    records = acme.post("/v1/memories", json={
        "messages": [{"content": SECRET, "id": "src-1"}, "alice likes the colour teal"],
        "user_id": "alice", "session_id": "s1", "agent_id": "bot", "metadata": {"topic": "vault"},
    }).json()["records"]
    yield server, acme, server.client("globex"), [r["id"] for r in records]
    stop_deployment(live, server)


def assert_acme_intact(acme, ids):
    listed = acme.get("/v1/memories", params={"user_id": "alice"}).json()["records"]
    assert [r["id"] for r in listed] == ids
    assert listed[0]["text"] == SECRET


def test_same_user_id_finds_nothing_in_another_tenant(world):
    server, acme, globex, ids = world
    searches = [{}, {"session_id": "s1"}, {"agent_id": "bot"}, {"filters": {"id": ids[0]}},
                {"filters": {"source": "src-1"}}, {"filters": {"metadata.topic": "vault"}},
                {"filters": {"id": {"in": ids}}}, {"filters": {"session_id": {"ne": "zzz"}}}]
    for extra in searches:
        found = globex.post("/v1/memories/search", json={"query": "vault code 4711", "user_id": "alice", **extra})
        assert found.status_code == 200 and found.json()["hits"] == [], extra
        listed = globex.get("/v1/memories", params={
            "user_id": "alice", **{k: v for k, v in extra.items() if k != "filters"},
            **({"filters": json.dumps(extra["filters"])} if "filters" in extra else {})})
        assert listed.status_code == 200 and listed.json()["records"] == [], extra
    block = globex.post("/v1/context", json={"query": "vault code", "user_id": "alice"})
    assert block.status_code == 200 and block.json()["context"] == ""
    assert globex.get("/v1/stats").json()["records"] == 0
    assert globex.get("/v1/stats", params={"user_id": "alice"}).json()["records"] == 0
    assert "4711" not in block.text
    # The same user id in the right tenant does find it.
    assert acme.post("/v1/memories/search", json={"query": "vault code 4711", "user_id": "alice"}).json()["hits"]


def test_guessed_ids_from_another_tenant_are_404_for_every_verb(world):
    server, acme, globex, ids = world
    for rid in ids:
        for params in ({}, {"user_id": "alice"}):
            assert globex.get(f"/v1/memories/{rid}", params=params).status_code == 404
            assert globex.get(f"/v1/memories/{rid}/history", params=params).status_code == 404
            assert globex.delete(f"/v1/memories/{rid}", params=params).status_code == 404
            patched = globex.patch(f"/v1/memories/{rid}", json={"text": "pwned", **params})
            assert patched.status_code == 404
            assert patched.json()["error"]["type"] == "NotFoundError"
    assert_acme_intact(acme, ids)
    assert [v["event"] for v in acme.get(f"/v1/memories/{ids[0]}/history").json()["versions"]] == ["add"]


def test_scope_and_tenant_cannot_be_smuggled_in(world):
    server, acme, globex, ids = world
    for filters in ({"tenant": "acme"}, {"user_id": "alice"}, {"tenant_id": "acme"}):
        response = globex.post("/v1/memories/search", json={"query": "vault", "user_id": "alice", "filters": filters})
        assert response.status_code == 422, filters
    assert globex.post("/v1/memories/search", json={"query": "vault", "user_id": "alice",
                                                    "tenant": "acme"}).status_code == 422
    # Headers and query parameters naming a tenant are not read.
    spoofed = globex.get("/v1/memories", params={"user_id": "alice", "tenant": "acme"},
                         headers={"X-Tenant": "acme", "X-Engram-Tenant": "acme"})
    assert spoofed.status_code == 200 and spoofed.json()["records"] == []
    assert globex.get(f"/v1/memories/{ids[0]}", headers={"X-Tenant": "acme"}).status_code == 404


def test_export_forget_and_import_stay_in_the_tenant(world):
    server, acme, globex, ids = world
    exported = globex.post("/v1/export", json={"user_id": "alice"})
    assert exported.status_code == 200
    lines = exported.text.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["format"] == "engram-cube"  # a header, no records
    assert "4711" not in exported.text

    forgot = globex.post("/v1/forget", json={"user_id": "alice", "confirm": True})
    assert forgot.status_code == 200 and forgot.json() == {"forgotten": 0}

    # A cube carrying acme's record ids lands in globex's own store and touches nothing of acme's.
    stolen = acme.post("/v1/export", json={"user_id": "alice"}).text
    forged = stolen.replace(SECRET, "globex overwrote this")
    imported = globex.post("/v1/import", content=forged.encode())
    assert imported.status_code == 200 and imported.json() == {"imported": 2}
    assert globex.get(f"/v1/memories/{ids[0]}").json()["text"] == "globex overwrote this"
    assert acme.get(f"/v1/memories/{ids[0]}").json()["text"] == SECRET
    globex.delete(f"/v1/memories/{ids[0]}")
    assert_acme_intact(acme, ids)


def test_mcp_tools_of_another_tenant_find_nothing(world):
    server, acme, globex, ids = world

    async def run():
        headers = {"Authorization": f"Bearer {server.secrets['globex']}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with Client(streamable_http_client(server.url + "/mcp", http_client=http)) as client:
                return [
                    await client.call_tool("recall", {"query": "vault code 4711", "user_id": "alice"}),
                    await client.call_tool("recall", {"query": "vault", "user_id": "alice",
                                                      "filters": {"id": ids[0]}}),
                    await client.call_tool("list_memories", {"user_id": "alice"}),
                    await client.call_tool("context", {"query": "vault code", "user_id": "alice"}),
                    await client.call_tool("forget", {"user_id": "alice", "memory_id": ids[0], "confirm": True}),
                    await client.call_tool("forget", {"user_id": "alice", "confirm": True}),
                ]

    recall, recall_by_id, listed, block, forget_one, forget_all = asyncio.run(run())
    assert recall.structured_content == {"hits": []} and recall_by_id.structured_content == {"hits": []}
    assert listed.structured_content["records"] == []
    assert "4711" not in "".join(c.text for c in block.content)
    assert forget_one.is_error and "NotFoundError" in forget_one.content[0].text
    assert forget_all.structured_content == {"forgotten": 0}
    assert_acme_intact(acme, ids)


def test_two_tenants_with_the_same_user_ids_stay_apart(world):
    server, acme, globex, ids = world
    globex.post("/v1/memories", json={"messages": "globex alice likes jazz", "user_id": "alice"})
    acme_texts = [h["text"] for h in acme.post("/v1/memories/search",
                                               json={"query": "alice likes", "user_id": "alice"}).json()["hits"]]
    globex_texts = [h["text"] for h in globex.post("/v1/memories/search",
                                                   json={"query": "alice likes", "user_id": "alice"}).json()["hits"]]
    assert "globex alice likes jazz" not in acme_texts and SECRET in acme_texts
    assert globex_texts == ["globex alice likes jazz"]
    # Keys of one tenant share its store: the read-only acme key sees acme's data, not globex's.
    ro = server.client("acme-ro")
    assert len(ro.get("/v1/memories", params={"user_id": "alice"}).json()["records"]) == 2


def test_registry_opens_one_memory_per_tenant_sharing_one_embedder(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from engramdb.config import Config
    from engramdb.errors import ConfigError, UsageError
    from engramdb.providers.fake import FakeEmbedder
    from engramdb.server.tenants import TenantRegistry

    embedder = FakeEmbedder()
    registry = TenantRegistry(tmp_path / "engram.db", Config(), embedder=embedder)
    with ThreadPoolExecutor(8) as pool:
        opened = list(pool.map(lambda i: registry.memory("acme" if i % 2 else "globex"), range(32)))
    acme, globex = registry.memory("acme"), registry.memory("globex")
    assert {id(m) for m in opened} == {id(acme), id(globex)}
    assert acme is not globex and acme.store.url != globex.store.url
    assert acme.embedder is embedder and globex.embedder is embedder
    assert sorted(registry.open_tenants()) == ["acme", "globex"]
    acme.add("only in acme", user_id="u")
    assert globex.list(user_id="u") == []
    registry.close()
    with pytest.raises(UsageError):  # closed stores refuse work
        acme.list(user_id="u")
    with pytest.raises(ConfigError):
        registry.memory("acme")
