"""API keys: the key store on a real SQLite file, `engram keys`, and `engram serve`."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace

import httpx
import pytest
from click.testing import CliRunner
from server_helpers import start_deployment, stop_deployment

from engramdb.cli import main
from engramdb.errors import AuthenticationError, InvalidInputError, MissingDependencyError, NotFoundError
from engramdb.server.keys.sqlite import SQLiteKeyStore, keys_path

ENV = {"ENGRAM_CONFIG": None, "ENGRAM_STORE": None, "ENGRAM_EMBEDDER": "fake", "COLUMNS": "200"}


@pytest.fixture
def keys(tmp_path):
    store = SQLiteKeyStore(tmp_path / "engram.keys.db")
    yield store
    store.close()


def test_a_key_is_random_stored_hashed_and_verifiable(keys, tmp_path):
    made = keys.create("acme", name="ci")
    other = keys.create("acme")
    assert made.secret.startswith(f"egk_{made.key.key_id}_") and made.secret != other.secret
    assert made.key.tenant == "acme" and made.key.read_only is False and made.key.name == "ci"
    raw = (tmp_path / "engram.keys.db").read_bytes() + (tmp_path / "engram.keys.db-wal").read_bytes()
    assert made.secret.split("_", 2)[2].encode() not in raw  # the secret is nowhere on disk
    import sqlite3

    with sqlite3.connect(tmp_path / "engram.keys.db") as conn:
        (stored,) = conn.execute("SELECT key_hash FROM api_keys WHERE key_id = ?", (made.key.key_id,)).fetchone()
    assert stored == hashlib.sha256(made.secret.encode()).hexdigest()
    assert keys.verify(made.secret).key_id == made.key.key_id
    assert keys.get(made.key.key_id).last_used_at is not None
    assert "secret" not in keys.list()[0].to_dict() and "key_hash" not in keys.list()[0].to_dict()


def test_wrong_revoked_and_malformed_keys_are_refused(keys):
    made = keys.create("acme")
    read_only = keys.create("acme", read_only=True)
    assert keys.verify(read_only.secret).read_only is True
    wrong = made.secret[:-2] + ("xx" if not made.secret.endswith("xx") else "yy")
    for bad in (wrong, "", "egk_", "egk_zzzzzzzzzzzz_" + "a" * 43, made.secret + "x", f"egk_{'0' * 12}_{'a' * 43}"):
        with pytest.raises(AuthenticationError):
            keys.verify(bad)
    revoked = keys.revoke(made.key.key_id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationError, match="revoked"):
        keys.verify(made.secret)
    assert keys.verify(read_only.secret).tenant == "acme"  # the other key still works
    with pytest.raises(NotFoundError):
        keys.revoke("0123456789ab")
    with pytest.raises(NotFoundError):
        keys.revoke("../etc")
    with pytest.raises(InvalidInputError):
        keys.create("")
    assert [k.tenant for k in keys.list("acme")] == ["acme", "acme"] and keys.list("globex") == []


def cli(store: str, *args: str):
    return CliRunner(env=ENV).invoke(main, ["--store", store, *args], catch_exceptions=False)


def test_keys_cli_shows_the_secret_once_and_revoke_makes_it_401(tmp_path):
    live, server = start_deployment(tmp_path)  # the server's keys live beside tmp_path/engram.db
    store = f"sqlite:///{server.store}"
    try:
        created = cli(store, "keys", "create", "--tenant", "initech", "--name", "laptop")
        assert created.exit_code == 0, created.output
        secret = created.stdout.strip()
        assert secret.startswith("egk_") and len(created.stdout.splitlines()) == 1
        assert "not shown again" in created.stderr
        key_id = secret.split("_")[1]

        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"})
        assert client.post("/v1/memories", json={"messages": "hello", "user_id": "u"}).status_code == 201

        listed = cli(store, "keys", "list")
        assert listed.exit_code == 0 and key_id in listed.stdout and "initech" in listed.stdout
        as_json = cli(store, "keys", "list", "--json")
        rows = json.loads(as_json.stdout)
        assert {r["tenant"] for r in rows} == {"acme", "globex", "initech"}
        for output in (listed.output, as_json.output):
            assert secret not in output and secret.split("_", 2)[2] not in output
            assert not any(s.split("_", 2)[2] in output for s in server.secrets.values())
        mine = next(r for r in rows if r["key_id"] == key_id)
        assert mine["name"] == "laptop" and mine["read_only"] is False and mine["last_used_at"] is not None

        revoked = cli(store, "keys", "revoke", key_id)
        assert revoked.exit_code == 0 and f"Revoked key {key_id}" in revoked.stdout
        refused = client.get("/v1/stats")
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "AuthenticationError"
        assert server.client("acme").get("/v1/stats").status_code == 200  # other keys unaffected
        client.close()
    finally:
        stop_deployment(live, server)


def test_keys_cli_read_only_and_errors(tmp_path):
    store = f"sqlite:///{tmp_path}/engram.db"
    made = json.loads(cli(store, "keys", "create", "--tenant", "acme", "--read-only", "--json").stdout)
    assert made["read_only"] is True and made["secret"].startswith(f"egk_{made['key_id']}_")
    assert (tmp_path / "engram.keys.db").exists()
    missing = cli(store, "keys", "revoke", "0123456789ab")
    assert missing.exit_code == 2 and "error: NotFoundError" in missing.stderr
    assert cli(store, "keys", "create").exit_code == 2  # --tenant is required
    unknown = cli("mysql://localhost/engram", "keys", "list")
    assert unknown.exit_code == 2 and "ConfigError" in unknown.stderr and "mysql" in unknown.stderr


def test_serve_names_the_extra_when_the_web_stack_is_missing(tmp_path, monkeypatch):
    import importlib.util

    from engramdb.server import require_server_deps

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'engramdb\[server\]'"):
        require_server_deps()
    result = cli(f"sqlite:///{tmp_path}/x.db", "serve")
    assert result.exit_code == 1
    assert "MissingDependencyError" in result.stderr and "pip install 'engramdb[server]'" in result.stderr


def test_no_auth_is_for_loopback_only(tmp_path):
    result = cli(f"sqlite:///{tmp_path}/x.db", "serve", "--no-auth", "--host", "0.0.0.0")
    assert result.exit_code == 2 and "loopback only" in result.stderr


def test_engram_serve_listens_on_loopback_and_wants_keys(tmp_path):
    env = {**os.environ, "ENGRAM_EMBEDDER": "fake"}
    env.pop("ENGRAM_CONFIG", None)
    command = [sys.executable, "-m", "engramdb.cli", "--store", f"sqlite:///{tmp_path}/engram.db",
               "serve", "--port", "0", "--json"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        where = json.loads(process.stdout.readline())
        assert where["url"].startswith("http://127.0.0.1:") and where["auth"] is True
        assert where["mcp"] == where["url"] + "/mcp"
        assert httpx.get(where["url"] + "/healthz").json()["status"] == "ok"
        assert httpx.get(where["url"] + "/readyz").status_code == 200
        assert httpx.get(where["url"] + "/v1/stats").status_code == 401
        secret = cli(f"sqlite:///{tmp_path}/engram.db", "keys", "create", "--tenant", "t").stdout.strip()
        ok = httpx.get(where["url"] + "/v1/stats", headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200 and ok.json()["records"] == 0
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    requests = [entry for entry in logs if entry.get("event") == "request"]
    assert [r["status"] for r in requests] == [200, 200, 401, 200]
    assert requests[-1]["tenant"] == "t" and secret not in stderr


# -- keys that name their users ------------------------------------------------------------


def test_a_key_keeps_the_users_it_reaches(keys):
    from engramdb.server.scopes import UserScope

    one = keys.create("acme", users=["alice"])
    several = keys.create("acme", users=["alice", "bob", "alice"], default_user="bob")
    prefix = keys.create("acme", user_prefix="app1:", name="app")
    everyone = keys.create("acme", default_user="ops")
    assert one.key.scope == UserScope(users=("alice",), default="alice")  # one user is its default
    assert several.key.scope == UserScope(users=("alice", "bob"), default="bob")
    assert prefix.key.scope == UserScope(prefix="app1:") and everyone.key.scope == UserScope(default="ops")
    for made in (one, several, prefix, everyone):
        assert keys.get(made.key.key_id) == made.key and keys.verify(made.secret) == made.key
    assert {k.key_id: k.scope for k in keys.list()} == {m.key.key_id: m.key.scope
                                                        for m in (one, several, prefix, everyone)}
    assert prefix.key.to_dict()["users"] == [] and prefix.key.to_dict()["user_prefix"] == "app1:"
    assert several.key.to_dict()["users"] == ["alice", "bob"] and several.key.to_dict()["default_user"] == "bob"
    assert not everyone.key.scope.restricted and everyone.key.scope.allows("anyone")
    assert prefix.key.scope.allows("app1:carol") and not prefix.key.scope.allows("app2:carol")


@pytest.mark.parametrize("options,match", [
    ({"users": ["alice"], "default_user": "bob"}, "default user"),
    ({"user_prefix": "app1:", "default_user": "app2:x"}, "default user"),
    ({"users": "alice"}, "list"),
    ({"users": [""]}, "user id"),
    ({"users": [" alice"]}, "whitespace"),
    ({"users": [7]}, "user id"),
    ({"user_prefix": ""}, "prefix"),
    ({"user_prefix": "app\n"}, "prefix"),
    ({"users": [f"u{i}" for i in range(1001)]}, "prefix instead"),
])
def test_bad_user_scopes_are_refused_and_store_nothing(keys, options, match):
    with pytest.raises(InvalidInputError, match=match):
        keys.create("acme", **options)
    assert keys.list() == []


def test_a_key_store_made_before_user_scopes_is_migrated(tmp_path):
    import sqlite3

    from engramdb.server.keys.base import hash_key
    from engramdb.server.keys.sqlite import MIGRATIONS

    path = tmp_path / "old.keys.db"
    secret = "egk_0123456789ab_" + "s" * 43
    revoked = "egk_ba9876543210_" + "r" * 43
    with sqlite3.connect(path) as conn:  # what the first release wrote
        conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        conn.executescript(MIGRATIONS[0][1])
        conn.execute("INSERT INTO schema_migrations VALUES ('0001_api_keys', '2024-01-01T00:00:00Z')")
        conn.execute("INSERT INTO api_keys (key_id, tenant, name, key_hash, read_only, created_at) VALUES "
                     "('0123456789ab', 'acme', 'old', ?, 0, '2024-01-01T00:00:00.000000Z')", (hash_key(secret),))
        conn.execute("INSERT INTO api_keys VALUES ('ba9876543210', 'globex', NULL, ?, 1, "
                     "'2024-01-02T00:00:00.000000Z', '2024-01-03T00:00:00.000000Z', '2024-01-04T00:00:00.000000Z')",
                     (hash_key(revoked),))
        columns = [row[1] for row in conn.execute("PRAGMA table_info(api_keys)")]
        before = conn.execute(f"SELECT {', '.join(columns)} FROM api_keys ORDER BY key_id").fetchall()
    SQLiteKeyStore(path).close()
    with sqlite3.connect(path) as conn:  # loses nothing: every old column of every key
        assert conn.execute(f"SELECT {', '.join(columns)} FROM api_keys ORDER BY key_id").fetchall() == before
        assert conn.execute("SELECT users, user_prefix, default_user FROM api_keys").fetchall() == [(None,) * 3] * 2
    store = SQLiteKeyStore(path)
    try:
        old = store.verify(secret)
        assert old.tenant == "acme" and not old.scope.restricted and old.scope.default is None
        with pytest.raises(AuthenticationError, match="revoked"):
            store.verify(revoked)
        assert store.get("ba9876543210").read_only and store.get("ba9876543210").last_used_at.startswith("2024-01-03")
        assert store.create("acme", users=["alice"]).key.scope.only == "alice"
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")] == [
            name for name, _ in MIGRATIONS]
        conn.execute("INSERT INTO schema_migrations VALUES ('9999_future', 'x')")
    from engramdb.errors import ConfigError

    with pytest.raises(ConfigError, match="newer Engram"):
        SQLiteKeyStore(path)


def test_keys_cli_scopes_a_key_to_users_and_lists_them(tmp_path):
    store = f"sqlite:///{tmp_path}/engram.db"
    made = cli(store, "keys", "create", "--tenant", "acme", "--user", "alice", "--user", "bob",
               "--default-user", "bob")
    assert made.exit_code == 0, made.output
    assert "users: alice, bob" in made.stderr
    app = json.loads(cli(store, "keys", "create", "--tenant", "acme", "--user-prefix", "app1:", "--json").stdout)
    assert app["users"] == [] and app["user_prefix"] == "app1:" and app["default_user"] is None
    rows = {r["key_id"]: r for r in json.loads(cli(store, "keys", "list", "--json").stdout)}
    mine = rows[made.stdout.strip().split("_")[1]]
    assert mine["users"] == ["alice", "bob"] and mine["default_user"] == "bob"
    listed = cli(store, "keys", "list").stdout
    assert "alice, bob" in listed and "app1:*" in listed
    bad = cli(store, "keys", "create", "--tenant", "acme", "--user", "alice", "--default-user", "carol")
    assert bad.exit_code == 2 and "default user" in bad.stderr


def test_keys_list_shows_whole_ids_and_revoke_takes_a_prefix(tmp_path):
    store = f"sqlite:///{tmp_path}/engram.db"
    ids = [json.loads(cli(store, "keys", "create", "--tenant", "acme", "--name", "a rather long key name",
                          "--json").stdout)["key_id"] for _ in range(3)]
    narrow = CliRunner(env={**ENV, "COLUMNS": "60"}).invoke(main, ["--store", store, "keys", "list"])
    assert narrow.exit_code == 0
    assert all(key_id in narrow.stdout for key_id in ids), narrow.stdout  # not cut to fit
    revoked = cli(store, "keys", "revoke", ids[0][:6])
    assert revoked.exit_code == 0 and f"Revoked key {ids[0]}" in revoked.stdout
    assert cli(store, "keys", "revoke", ids[1] + "…").exit_code == 0  # as a cut-off table shows it
    for too_short in (ids[2][:3], "", "zzzz"):
        missing = cli(store, "keys", "revoke", too_short)
        assert missing.exit_code == 2 and "NotFoundError" in missing.stderr
    rows = {r["key_id"]: r["revoked_at"] for r in json.loads(cli(store, "keys", "list", "--json").stdout)}
    assert rows[ids[0]] and rows[ids[1]] and rows[ids[2]] is None


def test_revoke_refuses_an_ambiguous_prefix(keys, tmp_path):
    from engramdb.errors import UsageError
    from engramdb.server.keys.base import resolve_key_id

    made = [keys.create("acme").key for _ in range(3)]
    forged = [replace(made[0], key_id="abcd00000001"), replace(made[1], key_id="abcd00000002"), made[2]]
    with pytest.raises(UsageError, match="2 keys"):
        resolve_key_id("abcd", forged)
    assert resolve_key_id("abcd00000002", forged) == "abcd00000002"
    assert resolve_key_id("abcd0000000", forged[1:]) == "abcd00000002"
    with pytest.raises(NotFoundError):
        resolve_key_id("abc", forged)
