"""The inspector's server side: its page ships in the package and is served with a
strict Content-Security-Policy; its /ui/api routes need the key /v1 needs and reach what
that key reaches; the timeline pages by key; receipts never hold text; the page writes
stored text as text only; `engram ui` serves the local store behind a key of its own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engramdb import Memory
from engramdb.config import Config
from engramdb.providers.fake import FakeEmbedder
from engramdb.server.auth import Authenticator
from engramdb.server.inspector import STATIC
from engramdb.server.keys.sqlite import SQLiteKeyStore, keys_path
from engramdb.server.rest import create_app
from engramdb.server.tenants import TenantRegistry

from server_helpers import LiveServer

SAME_TIME = "2024-06-01T10:00:00Z"


@pytest.fixture
def site(tmp_path):
    store = tmp_path / "engram.db"
    with Memory(store, tenant="acme", embedder=FakeEmbedder()) as mem:
        mem.add([{"role": "user", "content": f"turn {i}", "id": f"t{i}", "timestamp": SAME_TIME} for i in range(5)]
                + [{"role": "user", "content": "later", "id": "t5", "timestamp": "2024-06-02T00:00:00Z"}],
                user_id="alice", session_id="s1")
        mem.add("bob's secret", user_id="bob", session_id="b1")
    keys = SQLiteKeyStore(keys_path(store))
    secrets = {"acme": keys.create("acme").secret, "alice-only": keys.create("acme", users=["alice"]).secret,
               "globex": keys.create("globex").secret}
    live = LiveServer(create_app(TenantRegistry(store, Config(), embedder=FakeEmbedder()), Authenticator(keys),
                                 mcp=False)).start()
    clients = {who: httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {s}"}, timeout=30)
               for who, s in secrets.items()}
    clients[None] = httpx.Client(base_url=live.url, timeout=30)
    yield clients
    for client in clients.values():
        client.close()
    live.stop()


def test_the_page_ships_in_the_package_and_is_served_with_a_strict_policy(site):
    assert {"index.html", "app.js", "app.css"} <= {p.name for p in STATIC.iterdir()}
    anonymous = site[None]
    page = anonymous.get("/ui", follow_redirects=True)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    script = anonymous.get("/ui/static/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert re.findall(r"<(?:script|link)[^>]+(?:src|href)=\"([^\"]+)\"", page.text) == \
        ["/ui/static/app.css", "/ui/static/app.js"]  # nothing from elsewhere: no CDN
    for name in ("nope.js", "..%2F__init__.py", "%2E%2E%2Fserver%2Frest.py"):
        assert anonymous.get(f"/ui/static/{name}").status_code == 404


def test_the_script_never_parses_stored_text_as_html():
    script = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "DOMParser", "createContextualFragment", "srcdoc"):
        assert sink not in script, sink
    assert "createTextNode" in script


def test_every_read_needs_the_key(site):
    for path in ("/ui/api/whoami", "/ui/api/users", "/ui/api/sessions?user_id=alice",
                 "/ui/api/timeline?user_id=alice", "/ui/api/jobs", "/ui/api/erasures?user_id=alice"):
        refused = site[None].get(path)
        assert refused.status_code == 401, path
        assert refused.json()["error"]["type"] == "AuthenticationError"
        assert site["acme"].get(path).status_code == 200, path


def test_a_key_reaches_only_its_tenant_and_users(site):
    assert [u["user_id"] for u in site["acme"].get("/ui/api/users").json()["users"]] == ["alice", "bob"]
    assert site["globex"].get("/ui/api/users").json()["users"] == []
    assert [u["user_id"] for u in site["alice-only"].get("/ui/api/users").json()["users"]] == ["alice"]
    assert site["alice-only"].get("/ui/api/sessions?user_id=bob").status_code == 403
    assert site["alice-only"].get("/ui/api/timeline?user_id=bob").status_code == 403
    bobs = site["acme"].get("/ui/api/timeline?user_id=bob").json()["records"][0]["id"]
    assert site["alice-only"].get(f"/ui/api/memories/{bobs}").status_code == 404
    assert site["globex"].get(f"/ui/api/memories/{bobs}").status_code == 404
    whoami = site["alice-only"].get("/ui/api/whoami").json()
    assert whoami == {"tenant": "acme", "read_only": False, "users": "alice", "default_user": "alice", "auth": True}


def test_the_timeline_pages_by_key_through_memories_of_one_time(site):
    seen, cursor = [], None
    while True:
        page = site["acme"].get("/ui/api/timeline", params={"user_id": "alice", "limit": 2,
                                                             **({"cursor": cursor} if cursor else {})}).json()
        seen += [r["text"] for r in page["records"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([f"turn {i}" for i in range(5)] + ["later"]) and len(seen) == 6
    assert site["acme"].get("/ui/api/timeline?user_id=alice&cursor=bogus").status_code == 422


def test_a_memory_page_and_a_deleted_ones_receipt_hold_no_erased_text(site):
    acme = site["acme"]
    bobs = acme.get("/ui/api/timeline?user_id=bob").json()["records"][0]
    page = acme.get(f"/ui/api/memories/{bobs['id']}").json()
    assert page["record"]["text"] == "bob's secret" and [v["event"] for v in page["history"]] == ["add"]
    assert acme.delete(f"/v1/memories/{bobs['id']}").status_code == 200
    gone = acme.get(f"/ui/api/memories/{bobs['id']}")
    assert gone.status_code == 200 and gone.json()["record"] is None and "secret" not in gone.text
    receipts = acme.get("/ui/api/erasures?user_id=bob")
    assert [r["memory_id"] for r in receipts.json()["receipts"]] == [bobs["id"]] and "secret" not in receipts.text
    assert "secret" not in acme.get("/ui/api/timeline?user_id=bob").text


def test_as_of_answers_from_the_library(site):
    acme = site["acme"]
    first = acme.get("/ui/api/timeline?user_id=alice").json()["records"][0]
    before = acme.get(f"/ui/api/memories/{first['id']}/as_of", params={"date": "2024-01-01"}).json()
    after = acme.get(f"/ui/api/memories/{first['id']}/as_of", params={"date": "2024-07-01"}).json()
    assert before["answer"] == [] and [r["id"] for r in after["answer"]] == [first["id"]]
    assert acme.get(f"/ui/api/memories/{first['id']}/as_of", params={"date": "not a date"}).status_code == 422


def test_jobs_and_bad_input(site):
    jobs = site["acme"].get("/ui/api/jobs").json()
    assert set(jobs) == {"summary", "jobs", "next"} and "pending" in jobs["summary"]
    assert site["acme"].get("/ui/api/jobs?state=nonsense").status_code == 422
    assert site["acme"].get("/ui/api/timeline?user_id=alice&limit=0").status_code == 422


def test_engram_ui_serves_the_local_store_behind_a_key_of_its_own(tmp_path):
    url = f"sqlite:///{tmp_path}/local.db"
    env = {**os.environ, "ENGRAM_EMBEDDER": "fake", "ENGRAM_EXTRACTOR": "none", "ENGRAM_CONFIG": "",
           "BROWSER": "false"}
    env.pop("ENGRAM_STORE", None)
    with Memory(url, embedder=FakeEmbedder()) as mem:
        mem.add("a local memory", user_id="me")
    refused = subprocess.run([sys.executable, "-m", "engramdb.cli", "ui", "--host", "0.0.0.0", "--no-open"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode != 0 and "loopback only" in refused.stderr
    proc = subprocess.Popen([sys.executable, "-m", "engramdb.cli", "--store", url, "ui", "--no-open", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        where = json.loads(line)
        assert where["url"].startswith("http://127.0.0.1:") and where["ui"].startswith(where["url"] + "/ui/#key=")
        key = where["ui"].split("#key=", 1)[1]
        assert httpx.get(where["url"] + "/ui/").status_code == 200
        assert httpx.get(where["url"] + "/ui/api/users").status_code == 401
        assert httpx.get(where["url"] + "/ui/api/users", headers={"Authorization": "Bearer wrong"}).status_code == 401
        users = httpx.get(where["url"] + "/ui/api/users", headers={"Authorization": f"Bearer {key}"})
        assert users.json()["users"] == [{"user_id": "me", "records": 1}]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_make_test_installs_the_browser_from_the_system_packages_and_never_skips():
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    assert re.search(r"^test: .*\bbrowser\b", makefile, re.M)
    recipe = makefile.split("\nbrowser:", 1)[1].split("\n\n", 1)[0]
    assert "apt-get install -y $(BROWSER_PACKAGES)" in recipe and "apt-get update" in recipe
    assert re.search(r"^BROWSER_PACKAGES := chromium chromium-driver$", makefile, re.M)
    browser_tests = (Path(__file__).parent / "test_inspector_browser.py").read_text()
    assert "skip" not in browser_tests  # a missing browser fails them, with the line that installs it
