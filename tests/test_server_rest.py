"""The REST API against a real uvicorn server on 127.0.0.1, with real SQLite files and
the fake embedder: every endpoint, auth, pagination, error bodies, request ids, logs."""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path

import pytest
from server_helpers import start_deployment, stop_deployment

from engramdb.types import Hit, Record, Version

RECORD_FIELDS = {f.name for f in fields(Record)}


@pytest.fixture
def server(tmp_path):
    live, deployment = start_deployment(tmp_path)
    yield deployment
    stop_deployment(live, deployment)


@pytest.fixture
def acme(server):
    return server.client("acme")


def add(client, *texts, user="alice", status=201, **extra):
    response = client.post("/v1/memories", json={"messages": list(texts), "user_id": user, **extra})
    assert response.status_code == status, response.text
    return response.json()


def assert_error(response, status: int, kind: str, text: str = "") -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message", "request_id"}, body
    assert body["error"]["type"] == kind, body
    assert text in body["error"]["message"], body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


# -- every endpoint ----------------------------------------------------------------------


def test_add_get_search_context_round_trip(acme):
    added = add(acme, "I moved to Lisbon in May", {"role": "assistant", "content": "Lisbon is lovely", "id": "t2",
                                                   "name": "Bot", "timestamp": "2024-05-01T10:00:00Z"},
                session_id="s1", agent_id="bot", metadata={"topic": "move"})
    records = added["records"]
    assert [r["text"] for r in records] == ["I moved to Lisbon in May", "Lisbon is lovely"]
    assert set(records[0]) == RECORD_FIELDS
    assert records[1]["sources"] == ["t2"] and records[1]["name"] == "Bot" and records[1]["role"] == "assistant"
    assert records[1]["created_at"] == "2024-05-01T10:00:00.000000Z"
    assert all(r["metadata"] == {"topic": "move"} and r["session_id"] == "s1" for r in records)

    got = acme.get(f"/v1/memories/{records[0]['id']}")
    assert got.status_code == 200 and got.json() == records[0]

    hits = acme.post("/v1/memories/search", json={"query": "where did alice move? Lisbon", "user_id": "alice"})
    assert hits.status_code == 200
    assert {h["id"] for h in hits.json()["hits"]} == {r["id"] for r in records}
    assert set(hits.json()["hits"][0]) == {f.name for f in fields(Hit)}

    filtered = acme.post("/v1/memories/search", json={"query": "Lisbon", "user_id": "alice",
                                                       "filters": {"role": "assistant"}}).json()["hits"]
    assert [h["id"] for h in filtered] == [records[1]["id"]]

    block = acme.post("/v1/context", json={"query": "Lisbon", "user_id": "alice", "budget_tokens": 200})
    assert block.status_code == 200 and "I moved to Lisbon in May" in block.json()["context"]


def test_add_a_single_string_and_a_single_object(acme):
    one = acme.post("/v1/memories", json={"messages": "just a string", "user_id": "alice"}).json()["records"]
    two = acme.post("/v1/memories", json={"messages": {"content": "an object"}, "user_id": "alice"}).json()["records"]
    assert [r["text"] for r in one + two] == ["just a string", "an object"]


def test_update_history_and_delete(acme):
    (record,) = add(acme, "I live in Porto")["records"]
    rid = record["id"]
    patched = acme.patch(f"/v1/memories/{rid}", json={"text": "I live in Lisbon", "reason": "moved",
                                                      "metadata": {"v": 2}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["text"] == "I live in Lisbon" and patched.json()["metadata"] == {"v": 2}
    versions = acme.get(f"/v1/memories/{rid}/history").json()["versions"]
    assert [(v["event"], v["text"]) for v in versions] == [("add", "I live in Porto"), ("update", "I live in Lisbon")]
    assert set(versions[0]) == {f.name for f in fields(Version)} and versions[1]["reason"] == "moved"

    deleted = acme.delete(f"/v1/memories/{rid}")
    assert deleted.status_code == 200 and deleted.json() == {"deleted": rid}
    assert_error(acme.get(f"/v1/memories/{rid}"), 404, "NotFoundError", rid)
    erased = acme.get(f"/v1/memories/{rid}/history").json()["versions"]
    assert erased[-1]["event"] == "delete" and all(v["text"] is None for v in erased)
    assert_error(acme.delete(f"/v1/memories/{rid}"), 404, "NotFoundError")


def test_user_id_narrows_get_patch_delete_history(acme):
    (record,) = add(acme, "bob's secret", user="bob")["records"]
    rid = record["id"]
    assert_error(acme.get(f"/v1/memories/{rid}", params={"user_id": "alice"}), 404, "NotFoundError")
    assert_error(acme.get(f"/v1/memories/{rid}/history", params={"user_id": "alice"}), 404, "NotFoundError")
    assert_error(acme.patch(f"/v1/memories/{rid}", json={"text": "x", "user_id": "alice"}), 404, "NotFoundError")
    assert_error(acme.delete(f"/v1/memories/{rid}", params={"user_id": "alice"}), 404, "NotFoundError")
    assert acme.get(f"/v1/memories/{rid}", params={"user_id": "bob"}).json()["text"] == "bob's secret"


def test_list_pages_with_cursor_and_offset(acme):
    texts = [f"note number {i}" for i in range(7)]
    add(acme, *texts, session_id="s1")
    add(acme, "other session", session_id="s2")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"user_id": "alice", "session_id": "s1", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = acme.get("/v1/memories", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [r["text"] for r in body["records"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            assert body["next_offset"] is None
            break
        assert body["next_offset"] == len(seen)
    assert seen == texts and pages == 3
    by_offset = acme.get("/v1/memories", params={"user_id": "alice", "offset": 5, "limit": 10}).json()
    assert [r["text"] for r in by_offset["records"]] == ["note number 5", "note number 6", "other session"]
    assert by_offset["next_cursor"] is None
    exact = acme.get("/v1/memories", params={"user_id": "alice", "limit": 8}).json()
    assert len(exact["records"]) == 8 and exact["next_cursor"] is None  # no phantom empty page
    filtered = acme.get("/v1/memories", params={"user_id": "alice", "filters": json.dumps({"session_id": "s2"})})
    assert [r["text"] for r in filtered.json()["records"]] == ["other session"]


def test_list_rejects_bad_paging(acme):
    assert_error(acme.get("/v1/memories", params={"user_id": "alice", "cursor": "nonsense!"}), 422,
                 "InvalidInputError", "cursor")
    assert_error(acme.get("/v1/memories", params={"user_id": "alice", "cursor": "eyJvZmZzZXQiOiAxfQ", "offset": 1}),
                 422, "InvalidInputError", "not both")
    assert_error(acme.get("/v1/memories", params={"user_id": "alice", "limit": 0}), 422, "InvalidInputError", "limit")
    assert_error(acme.get("/v1/memories", params={"user_id": "alice", "limit": 51}), 422, "InvalidInputError",
                 "limit")
    assert_error(acme.get("/v1/memories", params={"user_id": "alice", "limit": "ten"}), 422, "InvalidInputError",
                 "limit")
    assert_error(acme.get("/v1/memories", params={"user_id": "alice", "filters": "{bad"}), 422, "InvalidInputError",
                 "filters")
    assert_error(acme.get("/v1/memories", params={"user_id": "alice", "filters": '{"tenant": "x"}'}), 422,
                 "InvalidInputError", "cannot filter")
    assert_error(acme.get("/v1/memories"), 422, "InvalidInputError", "user_id")


def test_forget_needs_confirm_and_erases_a_scope(acme):
    add(acme, "one", "two", session_id="s1")
    add(acme, "three", session_id="s2")
    assert_error(acme.post("/v1/forget", json={"user_id": "alice", "confirm": False}), 400, "UsageError", "confirm")
    assert_error(acme.post("/v1/forget", json={"user_id": "alice"}), 422, "InvalidInputError", "confirm")
    gone = acme.post("/v1/forget", json={"user_id": "alice", "session_id": "s1", "confirm": True})
    assert gone.status_code == 200 and gone.json() == {"forgotten": 2}
    left = acme.get("/v1/memories", params={"user_id": "alice"}).json()["records"]
    assert [r["text"] for r in left] == ["three"]


def test_export_then_import_into_another_user(acme):
    records = add(acme, "cube one", "cube two")["records"]
    exported = acme.post("/v1/export", json={"user_id": "alice"})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = exported.text.splitlines()
    assert json.loads(lines[0])["format"] == "engram-cube"
    assert [json.loads(line)["record"]["id"] for line in lines[1:]] == [r["id"] for r in records]

    again = acme.post("/v1/import", content=exported.content, headers={"content-type": "application/x-ndjson"})
    assert again.status_code == 200 and again.json() == {"imported": 0}  # same ids: skipped
    moved = acme.post("/v1/import", params={"user_id": "carol"}, content=exported.content)
    assert moved.status_code == 200 and moved.json() == {"imported": 2}
    carol = acme.get("/v1/memories", params={"user_id": "carol"}).json()["records"]
    assert [r["text"] for r in carol] == ["cube one", "cube two"]
    assert not {r["id"] for r in carol} & {r["id"] for r in records}

    assert_error(acme.post("/v1/import", content=b""), 422, "InvalidInputError", "empty")
    assert_error(acme.post("/v1/import", content=b'{"format": "other"}\n'), 422, "InvalidInputError", "not an Engram")
    assert_error(acme.post("/v1/import", content=b"\xff\xfe garbage"), 422, "InvalidInputError")


def test_stats_count_the_tenant_and_hide_server_paths(acme, server):
    add(acme, "a", "b", user="alice")
    add(acme, "c", user="bob")
    whole = acme.get("/v1/stats").json()
    assert whole["records"] == 3 and whole["users"] == 2
    assert "store" not in whole and str(server.store.parent) not in json.dumps(whole)
    assert acme.get("/v1/stats", params={"user_id": "bob"}).json()["records"] == 1


def test_health_and_readiness(server):
    anonymous = server.client(None)
    health = anonymous.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


# -- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer egk_nope"},
    {"Authorization": "Bearer egk_000000000000_" + "x" * 43},
])
def test_requests_without_a_valid_key_get_401(server, headers):
    client = server.client(None, **headers)
    for response in (client.get("/v1/memories", params={"user_id": "alice"}),
                     client.post("/v1/memories", json={"messages": "x", "user_id": "alice"}),
                     client.get("/v1/stats"), client.post("/v1/export", json={"user_id": "alice"})):
        assert_error(response, 401, "AuthenticationError")
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_tampered_secret_is_refused(server):
    secret = server.secrets["acme"]
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert_error(server.client(None, Authorization=f"Bearer {tampered}").get("/v1/stats"), 401,
                 "AuthenticationError", "not valid")


def test_a_revoked_key_gets_401(server, acme):
    assert acme.get("/v1/stats").status_code == 200
    key_id = server.secrets["acme"].split("_")[1]
    server.keys.revoke(key_id)
    assert_error(acme.get("/v1/stats"), 401, "AuthenticationError", "revoked")


def test_a_read_only_key_reads_but_may_not_write(server, acme):
    (record,) = add(acme, "readable")["records"]
    ro = server.client("acme-ro")
    assert ro.get(f"/v1/memories/{record['id']}").json()["text"] == "readable"
    assert ro.post("/v1/memories/search", json={"query": "readable", "user_id": "alice"}).json()["hits"]
    assert ro.post("/v1/context", json={"query": "readable", "user_id": "alice"}).status_code == 200
    assert ro.get("/v1/memories", params={"user_id": "alice"}).status_code == 200
    assert ro.get(f"/v1/memories/{record['id']}/history").status_code == 200
    assert ro.post("/v1/export", json={"user_id": "alice"}).status_code == 200
    assert ro.get("/v1/stats").status_code == 200
    for response in (
        ro.post("/v1/memories", json={"messages": "x", "user_id": "alice"}),
        ro.patch(f"/v1/memories/{record['id']}", json={"text": "changed"}),
        ro.delete(f"/v1/memories/{record['id']}"),
        ro.post("/v1/forget", json={"user_id": "alice", "confirm": True}),
        ro.post("/v1/import", content=b'{"format": "engram-cube"}\n'),
    ):
        assert_error(response, 403, "PermissionDeniedError", "read-only")
    assert acme.get(f"/v1/memories/{record['id']}").json()["text"] == "readable"


def test_no_auth_mode_serves_the_local_untenanted_store(tmp_path):
    from engramdb import Memory
    from engramdb.providers.fake import FakeEmbedder

    live, deployment = start_deployment(tmp_path, auth=False)
    try:
        client = deployment.client(None)
        (record,) = add(client, "local note")["records"]
        with Memory(deployment.store, embedder=FakeEmbedder()) as local:  # the CLI's store
            assert local.get(record["id"]).text == "local note"
    finally:
        stop_deployment(live, deployment)


# -- bad input: typed 4xx, never 500 --------------------------------------------------------


def test_malformed_json_is_400(acme):
    for body in (b"{not json", b'{"messages": "x", "user_id": ', b"\xff\xfe"):
        response = acme.post("/v1/memories", content=body, headers={"content-type": "application/json"})
        assert_error(response, 400, "InvalidInputError", "not valid JSON")


@pytest.mark.parametrize("body,field", [
    ({"messages": 5, "user_id": "alice"}, "messages"),
    ({"messages": "x", "user_id": 7}, "user_id"),
    ({"messages": "x"}, "user_id"),
    ({"messages": "x", "user_id": ""}, "user_id"),
    ({"messages": "x", "user_id": "alice", "extra": 1}, "extra"),
    ({"messages": [{"content": "x", "role": "robot"}], "user_id": "alice"}, "role"),
    ({"messages": [{"content": "x", "colour": "red"}], "user_id": "alice"}, "colour"),
    ({"messages": "x", "user_id": "alice", "metadata": "not a dict"}, "metadata"),
    ([1, 2, 3], "body"),
    ("just a string", "body"),
])
def test_wrong_types_on_add_are_422(acme, body, field):
    assert_error(acme.post("/v1/memories", json=body), 422, "InvalidInputError", field)


def test_values_memory_refuses_are_422(acme):
    assert_error(acme.post("/v1/memories", json={"messages": "   ", "user_id": "alice"}), 422, "InvalidInputError",
                 "empty")
    assert_error(acme.post("/v1/memories", json={"messages": [], "user_id": "alice"}), 422, "InvalidInputError",
                 "empty")
    assert_error(acme.post("/v1/memories", json={"messages": {"content": "x", "timestamp": "yesterday-ish"},
                                                 "user_id": "alice"}), 422, "InvalidInputError", "timestamp")
    assert_error(acme.post("/v1/memories/search", json={"query": "", "user_id": "alice"}), 422, "InvalidInputError",
                 "query")
    assert_error(acme.post("/v1/memories/search", json={"query": "x", "user_id": "alice", "limit": "5"}), 422,
                 "InvalidInputError", "limit")
    assert_error(acme.post("/v1/memories/search", json={"query": "x", "user_id": "alice", "limit": 10**6}), 422,
                 "InvalidInputError", "limit")
    assert_error(acme.post("/v1/memories/search", json={"query": "x", "user_id": "alice",
                                                        "filters": {"nope": 1}}), 422, "InvalidInputError", "nope")
    assert_error(acme.post("/v1/context", json={"query": "x", "user_id": "alice", "budget_tokens": -1}), 422,
                 "InvalidInputError", "budget_tokens")
    assert_error(acme.patch("/v1/memories/mem_x", json={"text": 3}), 422, "InvalidInputError", "text")


def test_deeply_nested_json_is_refused_not_recursed_into(acme, server):
    import socket
    from urllib.parse import urlsplit

    deep = '{"a":' * 900 + "1" + "}" * 900
    body = ('{"messages": "x", "user_id": "alice", "metadata": ' + deep + "}").encode()
    response = acme.post("/v1/memories", content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, "InvalidInputError", "nests deeper than 32")
    filters = {"metadata.a": {"in": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}
    assert_error(acme.post("/v1/memories/search", json={"query": "x", "user_id": "alice", "filters": filters}), 422,
                 "InvalidInputError", "nests deeper")
    bomb = b"[" * 100_000 + b"]" * 100_000
    assert_error(acme.post("/v1/memories", content=bomb, headers={"content-type": "application/json"}), 400,
                 "InvalidInputError")
    # A Content-Length that is not a number (httpx will not send one: a raw socket does).
    where = urlsplit(server.url)
    with socket.create_connection((where.hostname, where.port)) as sock:
        sock.sendall(b"POST /v1/memories HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}")
        reply = sock.recv(4096).decode()
    assert reply.split(" ")[1] == "400", reply
    assert acme.get("/v1/stats").json()["records"] == 0


def test_unknown_ids_and_routes_are_404(acme):
    for response in (acme.get("/v1/memories/mem_unknown"), acme.patch("/v1/memories/mem_unknown", json={"text": "x"}),
                     acme.delete("/v1/memories/mem_unknown"), acme.get("/v1/memories/mem_unknown/history"),
                     acme.get("/v1/memories/%00weird")):
        assert_error(response, 404, "NotFoundError")
    assert_error(acme.get("/v1/nothing-here"), 404, "NotFoundError")
    assert_error(acme.get("/v1/memories/" + "x" * 300), 422, "InvalidInputError", "memory id")
    assert_error(acme.put("/v1/memories/mem_unknown", json={}), 405, "UsageError")


def test_oversized_bodies_are_413(tmp_path):
    live, deployment = start_deployment(tmp_path, max_body_bytes=10_000)
    try:
        client = deployment.client("acme")
        big = {"messages": "x" * 20_000, "user_id": "alice"}
        assert_error(client.post("/v1/memories", json=big), 413, "InvalidInputError", "larger than 10000 bytes")

        def chunks():  # no Content-Length: the limit holds for chunked bodies too
            for _ in range(20):
                yield b"x" * 1000

        assert_error(client.post("/v1/import", content=chunks()), 413, "InvalidInputError", "larger than")
        assert add(client, "small is fine")["records"]
    finally:
        stop_deployment(live, deployment)


# -- request ids and logs ------------------------------------------------------------------


def test_request_ids_are_echoed_or_made(acme):
    mine = acme.get("/v1/stats", headers={"X-Request-ID": "trace-123.abc"})
    assert mine.headers["x-request-id"] == "trace-123.abc"
    made = acme.get("/v1/stats")
    assert len(made.headers["x-request-id"]) == 32 and made.headers["x-request-id"] != "trace-123.abc"
    hostile = acme.get("/v1/stats", headers={"X-Request-ID": "bad id\twith junk" + "x" * 200})
    assert hostile.headers["x-request-id"] != "bad id\twith junk" + "x" * 200
    error = acme.get("/v1/memories/mem_unknown", headers={"X-Request-ID": "req-404"})
    assert error.json()["error"]["request_id"] == "req-404"


def test_one_json_log_line_per_request_without_text_or_keys(acme, server, caplog):
    from engramdb.server.logs import JsonFormatter

    caplog.set_level(logging.INFO, logger="engramdb.server.access")
    acme.post("/v1/memories", json={"messages": "my bank PIN is 8642", "user_id": "alice"},
              headers={"X-Request-ID": "log-test-1"})
    acme.post("/v1/memories/search", json={"query": "bank PIN", "user_id": "alice"})
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "engramdb.server.access"]
    assert len(lines) == 2
    first = lines[0]
    assert first["request_id"] == "log-test-1" and first["tenant"] == "acme" and first["status"] == 201
    assert first["route"] == "/v1/memories" and first["method"] == "POST" and first["ms"] >= 0
    assert lines[1]["route"] == "/v1/memories/search"
    everything = caplog.text + json.dumps(lines)
    assert "8642" not in everything and "bank" not in everything
    assert server.secrets["acme"] not in everything


def test_openapi_is_served_and_the_checked_in_copy_is_current(server):
    from engramdb.server.rest import openapi_schema

    served = server.client(None).get("/openapi.json").json()
    assert {"/v1/memories", "/v1/memories/search", "/v1/context", "/v1/memories/{memory_id}",
            "/v1/memories/{memory_id}/history", "/v1/forget", "/v1/export", "/v1/import", "/v1/stats",
            "/healthz", "/readyz"} <= set(served["paths"])
    assert served == openapi_schema()
    checked_in = json.loads((Path(__file__).resolve().parents[1] / "docs" / "openapi.json").read_text())
    assert checked_in == served, "docs/openapi.json is stale: python -m engramdb.server.rest > docs/openapi.json"
