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
from server_helpers import over_mcp, start_deployment, stop_deployment

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


# -- users: keys scoped to some users of a tenant ---------------------------------------------

BOB_SECRET = "bob's locker code is 9021"


@pytest.fixture
def users_world(tmp_path):
    """One tenant, acme, with five users; keys that reach one user, two, or an app's prefix."""
    live, server = start_deployment(tmp_path)
    admin = server.client("acme")  # reaches every user of acme
    ids: dict[str, list[str]] = {}
    for user, texts in {"alice": ["alice likes teal", "alice runs on Tuesdays"], "bob": [BOB_SECRET],
                        "app1:carol": ["carol plays chess"], "app1:dave": ["dave bakes bread"],
                        "app2:erin": ["erin sails boats"]}.items():
        records = admin.post("/v1/memories", json={"messages": texts, "user_id": user, "session_id": "s1"})
        ids[user] = [r["id"] for r in records.json()["records"]]
    made = {"alice-key": server.keys.create("acme", users=["alice"]),
            "alice-bob": server.keys.create("acme", users=["alice", "bob"]),
            "app1": server.keys.create("acme", user_prefix="app1:"),
            "app1-default": server.keys.create("acme", user_prefix="app1:", default_user="app1:carol"),
            "alice-ro": server.keys.create("acme", users=["alice"], read_only=True)}
    server.secrets.update({name: m.secret for name, m in made.items()})
    yield server, admin, ids
    stop_deployment(live, server)


def texts_of(admin, user: str) -> list[str]:
    return [r["text"] for r in admin.get("/v1/memories", params={"user_id": user}).json()["records"]]


def assert_everyone_intact(admin, ids):
    for user, expected in ids.items():
        listed = admin.get("/v1/memories", params={"user_id": user}).json()["records"]
        assert [r["id"] for r in listed] == expected, user


def refused(response, status: int = 403, kind: str = "PermissionDeniedError") -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == kind, response.text


def test_a_key_for_one_user_needs_no_user_id_and_reaches_no_other(users_world):
    server, admin, ids = users_world
    alice = server.client("alice-key")
    added = alice.post("/v1/memories", json={"messages": "alice moved to Porto"})
    assert added.status_code == 201 and added.json()["records"][0]["user_id"] == "alice"
    ids["alice"].append(added.json()["records"][0]["id"])
    hits = alice.post("/v1/memories/search", json={"query": "likes teal"}).json()["hits"]
    assert hits and {h["id"] for h in hits} <= set(ids["alice"])
    assert "teal" in alice.post("/v1/context", json={"query": "teal"}).json()["context"]
    recalled = alice.post("/v1/recall", json={"query": "teal"}).json()
    assert "teal" in recalled["text"] and {h["id"] for h in recalled["hits"]} <= set(ids["alice"])
    assert [r["id"] for r in alice.get("/v1/memories").json()["records"]] == ids["alice"]
    assert alice.get("/v1/stats").json()["records"] == 3
    assert alice.get("/v1/jobs").status_code == 200
    cube = alice.post("/v1/export", json={}).text.splitlines()
    assert len(cube) == 4 and BOB_SECRET not in "".join(cube)
    assert alice.get(f"/v1/memories/{ids['alice'][0]}").json()["text"] == "alice likes teal"


def test_a_scoped_key_is_refused_every_verb_on_another_user(users_world):
    server, admin, ids = users_world
    alice = server.client("alice-key")
    for user in ("bob", "app1:carol", "alicex", "Alice", "alice "):
        attempts = {
            "add": alice.post("/v1/memories", json={"messages": "pwned", "user_id": user}),
            "search": alice.post("/v1/memories/search", json={"query": "locker code", "user_id": user}),
            "context": alice.post("/v1/context", json={"query": "locker code", "user_id": user}),
            "recall": alice.post("/v1/recall", json={"query": "locker code", "user_id": user}),
            "list": alice.get("/v1/memories", params={"user_id": user}),
            "forget": alice.post("/v1/forget", json={"user_id": user, "confirm": True}),
            "export": alice.post("/v1/export", json={"user_id": user}),
            "import": alice.post("/v1/import", params={"user_id": user}, content=b'{"format": "engram-cube"}\n'),
            "stats": alice.get("/v1/stats", params={"user_id": user}),
            "jobs": alice.get("/v1/jobs", params={"user_id": user}),
        }
        for verb, response in attempts.items():
            refused(response)
            assert "9021" not in response.text, verb
    assert_everyone_intact(admin, ids)


def test_another_users_memory_is_404_by_id_for_a_scoped_key(users_world):
    server, admin, ids = users_world
    alice = server.client("alice-key")
    bobs = ids["bob"][0]
    for params in ({}, {"user_id": "alice"}):
        for response in (alice.get(f"/v1/memories/{bobs}", params=params),
                         alice.get(f"/v1/memories/{bobs}/history", params=params),
                         alice.patch(f"/v1/memories/{bobs}", json={"text": "pwned", **params}),
                         alice.delete(f"/v1/memories/{bobs}", params=params)):
            refused(response, 404, "NotFoundError")
            assert "9021" not in response.text
    for response in (alice.get(f"/v1/memories/{bobs}", params={"user_id": "bob"}),
                     alice.patch(f"/v1/memories/{bobs}", json={"text": "pwned", "user_id": "bob"}),
                     alice.delete(f"/v1/memories/{bobs}", params={"user_id": "bob"})):
        refused(response)
    # A deleted memory keeps a history: still not another user's to read.
    admin.delete(f"/v1/memories/{bobs}")
    refused(alice.get(f"/v1/memories/{bobs}/history"), 404, "NotFoundError")
    assert [v["event"] for v in admin.get(f"/v1/memories/{bobs}/history").json()["versions"]] == ["add", "delete"]
    # Its own memories it may change, and does.
    mine = ids["alice"][0]
    assert alice.patch(f"/v1/memories/{mine}", json={"text": "alice likes navy"}).json()["text"] == "alice likes navy"
    assert [v["event"] for v in alice.get(f"/v1/memories/{mine}/history").json()["versions"]] == ["add", "update"]
    assert alice.delete(f"/v1/memories/{mine}").status_code == 200
    assert texts_of(admin, "alice") == ["alice runs on Tuesdays"]
    assert texts_of(admin, "app1:carol") == ["carol plays chess"]


def test_forget_and_import_stay_inside_the_keys_users(users_world):
    server, admin, ids = users_world
    alice = server.client("alice-key")
    bob_cube = admin.post("/v1/export", json={"user_id": "bob"}).content
    alice_cube = admin.post("/v1/export", json={"user_id": "alice"}).content
    # A cube of another user's memories is refused whole, unless moved into the key's user.
    refused(alice.post("/v1/import", content=bob_cube))
    mixed = alice_cube + b"\n".join(bob_cube.splitlines()[1:]) + b"\n"
    refused(alice.post("/v1/import", content=mixed))
    assert texts_of(admin, "alice") == ["alice likes teal", "alice runs on Tuesdays"]
    assert texts_of(admin, "bob") == [BOB_SECRET]
    moved = alice.post("/v1/import", params={"user_id": "alice"}, content=bob_cube)
    assert moved.status_code == 200 and moved.json() == {"imported": 1}
    assert texts_of(admin, "alice")[-1] == BOB_SECRET and texts_of(admin, "bob") == [BOB_SECRET]
    # Without user_id, forget erases the key's user and nobody else.
    refused(alice.post("/v1/forget", json={"confirm": False}), 400, "UsageError")
    gone = alice.post("/v1/forget", json={"confirm": True})
    assert gone.status_code == 200 and gone.json() == {"forgotten": 3}
    assert texts_of(admin, "alice") == [] and texts_of(admin, "bob") == [BOB_SECRET]
    del ids["alice"]
    assert_everyone_intact(admin, ids)


def test_a_key_for_two_users_must_name_one(users_world):
    server, admin, ids = users_world
    pair = server.client("alice-bob")
    for response in (pair.get("/v1/memories"), pair.post("/v1/memories", json={"messages": "x"}),
                     pair.post("/v1/memories/search", json={"query": "x"}), pair.get("/v1/stats"),
                     pair.post("/v1/export", json={})):
        refused(response, 422, "InvalidInputError")
        assert "user_id" in response.json()["error"]["message"]
    assert [r["text"] for r in pair.get("/v1/memories", params={"user_id": "bob"}).json()["records"]] == [BOB_SECRET]
    assert pair.get(f"/v1/memories/{ids['bob'][0]}").status_code == 200
    assert pair.get(f"/v1/memories/{ids['alice'][0]}").status_code == 200
    refused(pair.get(f"/v1/memories/{ids['app1:carol'][0]}"), 404, "NotFoundError")
    refused(pair.get("/v1/memories", params={"user_id": "app1:carol"}))


def test_a_prefix_key_reaches_an_apps_users_only(users_world):
    server, admin, ids = users_world
    app1 = server.client("app1")
    for user in ("app1:carol", "app1:dave", "app1:new"):
        assert app1.post("/v1/memories", json={"messages": f"{user} joined", "user_id": user}).status_code == 201
    for user in ("app2:erin", "app1", "alice", "xapp1:carol"):
        refused(app1.get("/v1/memories", params={"user_id": user}))
        refused(app1.post("/v1/memories/search", json={"query": "sails", "user_id": user}))
    assert app1.get(f"/v1/memories/{ids['app1:dave'][0]}").json()["text"] == "dave bakes bread"
    for other in (ids["app2:erin"][0], ids["bob"][0]):
        refused(app1.get(f"/v1/memories/{other}"), 404, "NotFoundError")
        refused(app1.delete(f"/v1/memories/{other}"), 404, "NotFoundError")
    refused(app1.get("/v1/memories"), 422, "InvalidInputError")  # no default user
    # A cube of the app's users imports under their own ids; one with any other user does not.
    app_cube = admin.post("/v1/export", json={"user_id": "app1:carol"}).content
    erin_cube = admin.post("/v1/export", json={"user_id": "app2:erin"}).content
    app1.post("/v1/forget", json={"user_id": "app1:carol", "confirm": True})
    assert app1.post("/v1/import", content=app_cube).json() == {"imported": 2}
    assert texts_of(admin, "app1:carol") == ["carol plays chess", "app1:carol joined"]
    refused(app1.post("/v1/import", content=erin_cube))
    # With a default user, requests without user_id mean it.
    default = server.client("app1-default")
    assert [r["text"] for r in default.get("/v1/memories").json()["records"]] == texts_of(admin, "app1:carol")
    refused(default.get("/v1/memories", params={"user_id": "app2:erin"}))
    assert texts_of(admin, "app2:erin") == ["erin sails boats"]


def test_a_read_only_scoped_key_neither_writes_nor_reaches_out(users_world):
    server, admin, ids = users_world
    ro = server.client("alice-ro")
    assert [r["id"] for r in ro.get("/v1/memories").json()["records"]] == ids["alice"]
    refused(ro.post("/v1/memories", json={"messages": "x"}))
    refused(ro.post("/v1/forget", json={"confirm": True}))
    refused(ro.get("/v1/memories", params={"user_id": "bob"}))
    assert_everyone_intact(admin, ids)


def test_mcp_with_a_scoped_key_reaches_its_user_only(users_world):
    server, admin, ids = users_world

    async def calls(client):
        return {
            "remember": await client.call_tool("remember", {"text": "alice plays the cello"}),
            "recall": await client.call_tool("recall", {"query": "cello"}),
            "listed": await client.call_tool("list_memories", {}),
            "block": await client.call_tool("context", {"query": "what does alice play"}),
            "recall_bob": await client.call_tool("recall", {"query": "locker code", "user_id": "bob"}),
            "list_bob": await client.call_tool("list_memories", {"user_id": "bob"}),
            "remember_bob": await client.call_tool("remember", {"text": "pwned", "user_id": "bob"}),
            "forget_bob": await client.call_tool("forget", {"user_id": "bob", "confirm": True}),
            "forget_bobs_id": await client.call_tool("forget", {"memory_id": ids["bob"][0], "confirm": True}),
        }

    got = over_mcp(server, "alice-key", calls)
    assert not got["remember"].is_error
    assert [h["text"] for h in got["recall"].structured_content["hits"]][0] == "alice plays the cello"
    assert {r["user_id"] for r in got["listed"].structured_content["records"]} == {"alice"}
    assert "cello" in "".join(c.text for c in got["block"].content)
    for name in ("recall_bob", "list_bob", "remember_bob", "forget_bob"):
        assert got[name].is_error and "PermissionDeniedError" in got[name].content[0].text, name
    assert got["forget_bobs_id"].is_error and "NotFoundError" in got["forget_bobs_id"].content[0].text
    assert "9021" not in json.dumps([c.text for r in got.values() for c in r.content])
    assert texts_of(admin, "bob") == [BOB_SECRET]
    prefixed = over_mcp(server, "app1", lambda c: c.call_tool("recall", {"query": "chess"}))
    assert prefixed.is_error and "user_id" in prefixed.content[0].text
