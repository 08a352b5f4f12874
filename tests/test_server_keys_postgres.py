"""API keys on PostgreSQL: the key store in the schema `engram_control` of a real
database, `engram keys`, and servers on one database sharing keys and revocations."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from server_helpers import LiveServer

from engramdb.cli import main
from engramdb.config import Config
from engramdb.errors import AuthenticationError, ConfigError, InvalidInputError, NotFoundError, StorageError, UsageError
from engramdb.providers.fake import FakeEmbedder
from engramdb.server.auth import Authenticator
from engramdb.server.keys import open_key_store
from engramdb.server.keys.postgres import MIGRATIONS, PostgresKeyStore
from engramdb.server.keys.sqlite import SQLiteKeyStore
from engramdb.server.rest import create_app
from engramdb.server.tenants import TenantRegistry

ENV = {"ENGRAM_CONFIG": None, "ENGRAM_STORE": None, "ENGRAM_KEYS": None, "ENGRAM_EMBEDDER": "fake",
       "COLUMNS": "200"}
MEMORY = {"messages": "I moved to Lisbon", "user_id": "alice"}


class ManualClock:
    def __init__(self) -> None:
        self.at = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.at


def cli(store: str, *args: str):
    return CliRunner(env=ENV).invoke(main, ["--store", store, *args], catch_exceptions=False)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_keys_live_hashed_in_the_control_schema_with_named_migrations(pg_url):
    keys = PostgresKeyStore(pg_url)
    try:
        made = keys.create("acme", name="ci")
        assert made.secret.startswith(f"egk_{made.key.key_id}_") and made.key.tenant == "acme"
        assert keys.applied_migrations() == [name for name, _ in MIGRATIONS]
        assert "key_hash" not in keys.list()[0].to_dict() and "secret" not in keys.list()[0].to_dict()
    finally:
        keys.close()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT row_to_json(k)::text, key_hash FROM engram_control.api_keys k").fetchall()
        recorded = conn.execute("SELECT name, applied_at FROM engram_control.schema_migrations").fetchall()
    assert len(rows) == 1 and rows[0][1] == hashlib.sha256(made.secret.encode()).hexdigest()
    assert made.secret.split("_", 2)[2] not in rows[0][0]  # only the hash is stored
    assert [name for name, _ in recorded] == ["0001_api_keys", "0002_key_users"]

    again = PostgresKeyStore(pg_url)  # reopening applies nothing twice and keeps the keys
    try:
        assert again.get(made.key.key_id) == made.key
    finally:
        again.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT name, applied_at FROM engram_control.schema_migrations").fetchall() == recorded
        conn.execute("INSERT INTO engram_control.schema_migrations VALUES ('9999_future', 'x')")
    with pytest.raises(ConfigError, match="newer Engram"):
        PostgresKeyStore(pg_url)


def test_keys_keep_their_users_in_postgres(pg_url):
    from engramdb.server.scopes import UserScope

    keys = PostgresKeyStore(pg_url)
    try:
        one = keys.create("acme", users=["alice"])
        several = keys.create("acme", users=["alice", "bob"], default_user="bob", read_only=True)
        prefix = keys.create("acme", user_prefix="app1:")
        assert one.key.scope == UserScope(users=("alice",), default="alice")
        for made in (one, several, prefix):
            assert keys.get(made.key.key_id) == made.key and keys.verify(made.secret) == made.key
        assert [k.scope for k in keys.list("acme")] == [one.key.scope, several.key.scope, prefix.key.scope]
        with pytest.raises(InvalidInputError, match="default user"):
            keys.create("acme", users=["alice"], default_user="carol")
        with pytest.raises(InvalidInputError, match="tenant"):
            keys.create("acme ")
        assert len(keys.list()) == 3
    finally:
        keys.close()


def test_a_control_schema_made_before_user_scopes_is_migrated(pg_url):
    from engramdb.server.keys.base import hash_key

    secret = "egk_0123456789ab_" + "s" * 43
    revoked = "egk_ba9876543210_" + "r" * 43
    with psycopg.connect(pg_url, autocommit=True) as conn:  # what the first release wrote
        conn.execute("CREATE SCHEMA engram_control")
        conn.execute("SET search_path TO engram_control")
        conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for statement in filter(str.strip, MIGRATIONS[0][1].split(";")):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES ('0001_api_keys', '2024-01-01T00:00:00Z')")
        conn.execute("INSERT INTO api_keys (key_id, tenant, name, key_hash, read_only, created_at) VALUES "
                     "('0123456789ab', 'acme', 'old', %s, FALSE, '2024-01-01T00:00:00.000000Z')", (hash_key(secret),))
        conn.execute("INSERT INTO api_keys VALUES ('ba9876543210', 'globex', NULL, %s, TRUE, "
                     "'2024-01-02T00:00:00.000000Z', '2024-01-03T00:00:00.000000Z', '2024-01-04T00:00:00.000000Z')",
                     (hash_key(revoked),))
        before = conn.execute("SELECT * FROM api_keys ORDER BY key_id").fetchall()
    keys = PostgresKeyStore(pg_url)
    with psycopg.connect(pg_url) as conn:  # loses nothing: every old column of every key
        columns = "key_id, tenant, name, key_hash, read_only, created_at, last_used_at, revoked_at"
        assert conn.execute(f"SELECT {columns} FROM engram_control.api_keys ORDER BY key_id").fetchall() == before
    try:
        assert keys.applied_migrations() == ["0001_api_keys", "0002_key_users"]
        old = keys.verify(secret)
        assert old.tenant == "acme" and old.name == "old" and not old.scope.restricted and old.scope.default is None
        with pytest.raises(AuthenticationError, match="revoked"):
            keys.verify(revoked)
        assert keys.get("ba9876543210").read_only and keys.get("ba9876543210").last_used_at.startswith("2024-01-03")
        assert keys.create("acme", user_prefix="app1:").key.scope.prefix == "app1:"
    finally:
        keys.close()


def test_verify_refuses_wrong_revoked_and_malformed_keys(pg_url):
    clock = ManualClock()
    keys = PostgresKeyStore(pg_url, clock=clock)
    try:
        made = keys.create("acme")
        read_only = keys.create("acme", read_only=True)
        assert keys.verify(read_only.secret).read_only is True and keys.verify(made.secret).read_only is False
        wrong = made.secret[:-2] + ("xx" if not made.secret.endswith("xx") else "yy")
        for bad in (wrong, "", "egk_", "egk_zzzzzzzzzzzz_" + "a" * 43, made.secret + "x", f"egk_{'0' * 12}_{'a' * 43}",
                    None):
            with pytest.raises(AuthenticationError):
                keys.verify(bad)
        clock.at += timedelta(hours=1)
        revoked = keys.revoke(made.key.key_id)
        assert revoked.revoked_at.startswith("2024-01-01T01:00")
        clock.at += timedelta(hours=1)
        assert keys.revoke(made.key.key_id).revoked_at == revoked.revoked_at  # the first revocation stands
        with pytest.raises(AuthenticationError, match="revoked"):
            keys.verify(made.secret)
        assert keys.verify(read_only.secret).tenant == "acme"  # the other key still works
        for unknown in ("0123456789ab", "../etc", "x' OR '1'='1"):
            with pytest.raises(NotFoundError):
                keys.revoke(unknown)
        with pytest.raises(InvalidInputError):
            keys.create("")
        assert [k.tenant for k in keys.list("acme")] == ["acme", "acme"] and keys.list("globex") == []
    finally:
        keys.close()
    with pytest.raises(UsageError, match="closed"):
        keys.list()


def test_last_used_is_written_at_most_once_a_minute_per_server(pg_url):
    clock = ManualClock()
    first, second = PostgresKeyStore(pg_url, clock=clock), PostgresKeyStore(pg_url, clock=clock)
    try:
        made = first.create("acme")
        assert first.get(made.key.key_id).last_used_at is None
        first.verify(made.secret)
        used = first.get(made.key.key_id).last_used_at
        assert used is not None and used.startswith("2024-01-01T00:00")
        clock.at += timedelta(minutes=5)  # the wall clock moves, but this server wrote < 60 s ago
        first.verify(made.secret)
        assert first.get(made.key.key_id).last_used_at == used
        second.verify(made.secret)  # another server writes its own first use
        assert second.get(made.key.key_id).last_used_at.startswith("2024-01-01T00:05")
    finally:
        first.close()
        second.close()


def test_open_key_store_picks_postgres_and_a_keys_file_still_wins(pg_url, tmp_path):
    chosen = open_key_store(pg_url)
    try:
        assert isinstance(chosen, PostgresKeyStore) and chosen.schema == "engram_control"
        chosen.ping()
    finally:
        chosen.close()
    chosen = open_key_store(pg_url, tmp_path / "keys.db")
    try:
        assert isinstance(chosen, SQLiteKeyStore)
    finally:
        chosen.close()
    chosen = open_key_store(pg_url.replace("postgresql://", "postgres://", 1))
    try:
        assert isinstance(chosen, PostgresKeyStore)
    finally:
        chosen.close()
    with pytest.raises(ConfigError, match="port"):
        open_key_store("postgresql://localhost:notaport/engram")
    with pytest.raises(StorageError, match="cannot connect"):
        PostgresKeyStore("postgresql://engram@127.0.0.1:1/engram", connect_timeout=2)


def test_a_missing_driver_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['psycopg'] = None\n"
        "from engramdb.server.keys import open_key_store\n"
        "from engramdb.errors import MissingDependencyError\n"
        "try:\n"
        "    open_key_store('postgresql://localhost/x')\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'engramdb[postgres]'" in out


def test_keys_cli_on_a_postgres_store(pg_url, tmp_path):
    created = cli(pg_url, "keys", "create", "--tenant", "initech", "--name", "laptop")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("egk_") and len(created.stdout.splitlines()) == 1 and "not shown again" in created.stderr
    key_id = secret.split("_")[1]
    read_only = json.loads(cli(pg_url, "keys", "create", "--tenant", "initech", "--read-only", "--json").stdout)
    assert read_only["read_only"] is True and read_only["secret"].startswith(f"egk_{read_only['key_id']}_")

    listed = cli(pg_url, "keys", "list")
    assert listed.exit_code == 0 and key_id in listed.stdout and "initech" in listed.stdout
    rows = json.loads(cli(pg_url, "keys", "list", "--json").stdout)
    assert sorted(r["key_id"] for r in rows) == sorted([key_id, read_only["key_id"]])
    for output in (listed.output, json.dumps(rows)):
        assert secret.split("_", 2)[2] not in output and read_only["secret"].split("_", 2)[2] not in output

    revoked = cli(pg_url, "keys", "revoke", key_id)
    assert revoked.exit_code == 0 and f"Revoked key {key_id} of tenant initech" in revoked.stdout
    assert json.loads(cli(pg_url, "keys", "list", "--json").stdout)[0]["revoked_at"] is not None
    missing = cli(pg_url, "keys", "revoke", "0123456789ab")
    assert missing.exit_code == 2 and "error: NotFoundError" in missing.stderr

    keys_file = tmp_path / "keys.db"  # --keys FILE still wins over the database
    in_file = cli(pg_url, "keys", "--keys", str(keys_file), "create", "--tenant", "elsewhere")
    assert in_file.exit_code == 0 and keys_file.exists()
    assert "elsewhere" not in cli(pg_url, "keys", "list").stdout

    down = cli("postgresql://engram@127.0.0.1:1/engram", "keys", "list")
    assert down.exit_code == 1 and "error: StorageError" in down.stderr


@pytest.fixture
def two_servers(pg_url):
    """Two servers on one PostgreSQL database, each with its own key store and pool, as
    two `engram serve` processes on two machines would be."""
    lives, stores = [], []
    for _ in range(2):
        registry = TenantRegistry(pg_url, Config(max_limit=50), embedder=FakeEmbedder())
        stores.append(open_key_store(pg_url))
        lives.append(LiveServer(create_app(registry, Authenticator(stores[-1]))).start())
    clients = [httpx.Client(base_url=live.url, timeout=30) for live in lives]
    yield pg_url, stores, clients
    for client in clients:
        client.close()
    for live in lives:
        live.stop()


def test_servers_on_one_database_share_keys_and_revocations(two_servers):
    url, (keys_a, keys_b), (a, b) = two_servers
    for server in (a, b):
        assert server.get("/v1/stats").status_code == 401  # no key
        assert server.get("/readyz").status_code == 200  # pings the key store too
    writer = cli(url, "keys", "create", "--tenant", "acme").stdout.strip()
    reader = cli(url, "keys", "create", "--tenant", "acme", "--read-only").stdout.strip()

    assert a.post("/v1/memories", json=MEMORY, headers=bearer(writer)).status_code == 201
    seen = b.get("/v1/stats", headers=bearer(writer))  # the other server knows the key (and the data)
    assert seen.status_code == 200 and seen.json()["records"] == 1
    for server in (a, b):
        assert server.get("/v1/stats", headers=bearer(reader)).status_code == 200
        denied = server.post("/v1/memories", json=MEMORY, headers=bearer(reader))
        assert denied.status_code == 403 and denied.json()["error"]["type"] == "PermissionDeniedError"

    made_on_a = keys_a.create("globex")  # a key made through one server's store
    assert b.get("/v1/stats", headers=bearer(made_on_a.secret)).status_code == 200

    key_id = writer.split("_")[1]
    assert cli(url, "keys", "revoke", key_id).exit_code == 0
    for server in (a, b):  # revoked everywhere at once: nothing caches a key
        refused = server.get("/v1/stats", headers=bearer(writer))
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "AuthenticationError"
        assert server.get("/v1/stats", headers=bearer(reader)).status_code == 200  # other keys unaffected
    keys_b.revoke(made_on_a.key.key_id)  # and revoked through the other's
    assert a.get("/v1/stats", headers=bearer(made_on_a.secret)).status_code == 401


def test_engram_serve_on_postgres_needs_no_keys_file(pg_url):
    env = {**os.environ, "ENGRAM_EMBEDDER": "fake"}
    env.pop("ENGRAM_CONFIG", None)
    env.pop("ENGRAM_KEYS", None)
    command = [sys.executable, "-m", "engramdb.cli", "--store", pg_url, "serve", "--port", "0", "--json"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.poll() is not None else "no address printed"
        where = json.loads(line)
        assert where["auth"] is True
        assert httpx.get(where["url"] + "/v1/stats").status_code == 401
        secret = cli(pg_url, "keys", "create", "--tenant", "t").stdout.strip()
        ok = httpx.get(where["url"] + "/v1/stats", headers=bearer(secret))
        assert ok.status_code == 200 and ok.json()["records"] == 0
        cli(pg_url, "keys", "revoke", secret.split("_")[1])
        assert httpx.get(where["url"] + "/v1/stats", headers=bearer(secret)).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert secret not in stderr


def test_a_scoped_key_made_on_postgres_holds_on_every_server(two_servers):
    url, _, (a, b) = two_servers
    admin = cli(url, "keys", "create", "--tenant", "acme").stdout.strip()
    alice = cli(url, "keys", "create", "--tenant", "acme", "--user", "alice").stdout.strip()
    assert a.post("/v1/memories", json={"messages": "bob's PIN is 1234", "user_id": "bob"},
                  headers=bearer(admin)).status_code == 201
    added = b.post("/v1/memories", json={"messages": "I moved to Lisbon"}, headers=bearer(alice))
    assert added.status_code == 201 and added.json()["records"][0]["user_id"] == "alice"
    for server in (a, b):
        listed = server.get("/v1/memories", headers=bearer(alice)).json()["records"]
        assert [r["text"] for r in listed] == ["I moved to Lisbon"]
        denied = server.get("/v1/memories", params={"user_id": "bob"}, headers=bearer(alice))
        assert denied.status_code == 403 and denied.json()["error"]["type"] == "PermissionDeniedError"
    shown = cli(url, "keys", "list").stdout
    assert "alice (default alice)" in shown
