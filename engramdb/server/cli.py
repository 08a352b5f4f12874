"""`engram serve` and `engram keys`: the server's commands, added to the main CLI.

`keys` needs only SQLite (or the `postgres` extra for a PostgreSQL store); `serve` needs the
`server` extra and says so when it is missing."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable

import click
from rich.table import Table

from ..console import console, print_json
from ..errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
KEYS_HELP = ("An API keys file (SQLite) [env ENGRAM_KEYS; default: beside a SQLite store, e.g. "
             "engram.keys.db next to engram.db; for a PostgreSQL store, the schema engram_control of its database].")


def _app():
    """The main group's App (its --store and --config)."""
    return click.get_current_context().find_root().obj


def _store_url(store: str | None) -> str | None:
    app = _app()
    return store or app.store or app.config.store


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port; see --json).")
@click.option("--store", "store", metavar="URL", help="Store URL (default: the global --store, then the config).")
@click.option("--no-auth", is_flag=True,
              help="No API keys: every request is the local user's, on the untenanted store (local use only).")
@click.option("--mcp-stdio", is_flag=True, help="Serve MCP over stdin/stdout for one local agent instead of HTTP.")
@click.option("--tenant", help="With --mcp-stdio: serve this tenant's store (default: the untenanted one).")
@click.option("--user", "user_id", metavar="ID",
              help="With --mcp-stdio: the user whose memory the agent keeps; tools need no user_id and reach "
                   "no other user.")
@click.option("--keys", "keys_file", metavar="FILE", envvar="ENGRAM_KEYS", help=KEYS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print where the server listens as one JSON line when ready.")
def serve(host: str, port: int, store: str | None, no_auth: bool, mcp_stdio: bool, tenant: str | None,
          user_id: str | None, keys_file: str | None, as_json: bool) -> None:
    """Run the REST API (under /v1) and MCP (at /mcp) on HOST:PORT.

    Every request needs `Authorization: Bearer <key>` (see `engram keys create`) unless
    --no-auth is given. With --mcp-stdio, speak MCP on stdin/stdout instead."""
    if not mcp_stdio:
        if tenant is not None:
            raise UsageError("--tenant goes with --mcp-stdio; over HTTP the API key names the tenant")
        if user_id is not None:
            raise UsageError("--user goes with --mcp-stdio; over HTTP the API key names its users "
                             "(engram keys create --user)")
    from . import require_server_deps

    require_server_deps()
    from .scopes import ANY_USER, UserScope, check_tenant
    from .tenants import Principal, TenantRegistry

    if mcp_stdio:
        who = Principal(tenant=None if tenant is None else check_tenant(tenant),
                        users=ANY_USER if user_id is None else UserScope.make([user_id]))
    app = _app()
    url = _store_url(store)
    registry = TenantRegistry(url, app.config)
    if mcp_stdio:
        from .logs import configure
        from .mcp_server import run_stdio

        configure(sys.stderr)
        run_stdio(registry, who)
        return
    if no_auth and host not in LOOPBACK:
        raise UsageError(f"--no-auth serves every memory to whoever connects; it listens on loopback only, "
                         f"not {host}")
    _serve_http(registry, url, keys_file, host, port, no_auth, as_json)


def _serve_http(registry, url: str | None, keys_file: str | None, host: str, port: int, no_auth: bool,
                as_json: bool) -> None:
    import uvicorn

    from .auth import Authenticator
    from .keys import open_key_store
    from .logs import configure
    from .rest import create_app

    try:
        keys = None if no_auth else open_key_store(url, keys_file)
    except BaseException:
        registry.close()
        raise
    configure(sys.stderr)
    app = create_app(registry, Authenticator(keys), host=host)
    try:
        sock, base = listen(host, port)
    except UsageError:
        registry.close()
        raise
    where = {"url": base, "mcp": f"{base}/mcp", "auth": not no_auth}
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    if as_json:
        when_started(server, lambda: _print_line(json.dumps(where)))
    else:
        click.echo(f"engram: serving {where['url']}/v1, {where['mcp']} and the inspector at {where['url']}/ui"
                   + ("" if where["auth"] else " without API keys (--no-auth)"), err=True)
    server.run(sockets=[sock])


def listen(host: str, port: int) -> tuple[socket.socket, str]:
    """A TCP socket bound to host:port (0: any free port) for uvicorn, and its base URL
    (`http://host:port`); a UsageError when it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP; without it, Nagle holds each response's body for the client's delayed ACK (+40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from None
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return sock, f"http://{shown}:{sock.getsockname()[1]}"


def when_started(server, announce: Callable[[], None]) -> None:
    """Call `announce` once uvicorn is accepting connections (the address, for scripts
    and tests)."""
    startup = server.startup

    async def startup_then_announce(sockets=None):
        await startup(sockets=sockets)
        if server.started:
            announce()

    server.startup = startup_then_announce


def _print_line(text: str) -> None:
    click.echo(text)
    sys.stdout.flush()


# -- keys ------------------------------------------------------------------------------


@click.group()
@click.option("--keys", "keys_file", metavar="FILE", envvar="ENGRAM_KEYS", help=KEYS_HELP)
@click.pass_context
def keys(ctx: click.Context, keys_file: str | None) -> None:
    """Manage API keys: each belongs to a tenant and is shown once, when created."""
    ctx.meta["engram.keys_file"] = keys_file


def _key_store():
    from .keys import open_key_store

    return open_key_store(_store_url(None), click.get_current_context().meta.get("engram.keys_file"))


@keys.command()
@click.option("--tenant", required=True, help="The tenant the key opens.")
@click.option("--read-only", is_flag=True, help="The key may read but not write.")
@click.option("--name", help="A label for the key, e.g. who holds it.")
@click.option("--user", "users", metavar="ID", multiple=True,
              help="The key reaches only this user id (repeat for several; one is also the default user).")
@click.option("--user-prefix", metavar="P", help="The key reaches only user ids that begin with P (an app's users).")
@click.option("--default-user", metavar="ID", help="The user a request without user_id means.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def create(tenant: str, read_only: bool, name: str | None, users: tuple[str, ...], user_prefix: str | None,
           default_user: str | None, as_json: bool) -> None:
    """Create a key for TENANT and print it. It is shown only this once.

    Without --user or --user-prefix the key reaches every user of the tenant."""
    store = _key_store()
    try:
        made = store.create(tenant, read_only=read_only, name=name, users=list(users), user_prefix=user_prefix,
                            default_user=default_user)
    finally:
        store.close()
    if as_json:
        print_json({**made.key.to_dict(), "secret": made.secret})
        return
    click.echo(made.secret)
    access = "read-only" if read_only else "read-write"
    reach = "" if not made.key.scope.restricted else f" (users: {made.key.scope.describe()})"
    click.echo(f"Created {access} key {made.key.key_id} for tenant {tenant}{reach}. Store the key now: "
               "it is not shown again.", err=True)


@keys.command(name="list")
@click.option("--tenant", help="Only this tenant's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_(tenant: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    store = _key_store()
    try:
        found = store.list(tenant)
    finally:
        store.close()
    if as_json:
        print_json([k.to_dict() for k in found])
        return
    if not found:
        click.echo("No API keys.", err=True)
        return
    table = Table()
    table.add_column("key id", no_wrap=True, min_width=12)  # whole: what `keys revoke` takes
    for column in ("tenant", "name", "users", "access", "created", "last used", "revoked"):
        table.add_column(column)
    for k in found:
        users = k.scope.describe() + (f" (default {k.scope.default})" if k.scope.default else "")
        table.add_row(k.key_id, k.tenant, k.name or "", users, "read-only" if k.read_only else "read-write",
                      k.created_at[:10], (k.last_used_at or "")[:16].replace("T", " "), (k.revoked_at or "")[:10])
    console().print(table)


@keys.command()
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def revoke(key_id: str, as_json: bool) -> None:
    """Revoke a key: requests with it get 401 from now on.

    KEY_ID is the id `keys list` shows, or its first characters (at least 4) when no
    other key's id begins with them."""
    from .keys.base import is_key_id, resolve_key_id

    store = _key_store()
    try:
        key = store.revoke(key_id if is_key_id(key_id) else resolve_key_id(key_id, store.list()))
    finally:
        store.close()
    if as_json:
        print_json(key.to_dict())
    else:
        click.echo(f"Revoked key {key.key_id} of tenant {key.tenant}.")
