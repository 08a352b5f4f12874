"""`engram ui`: the web inspector on the local (embedded) store, on 127.0.0.1.

It serves what `engram serve` serves (the REST API under /v1, the inspector at /ui), with
one difference: instead of API keys, a key made for this run only. The address it prints
and opens carries that key in its #fragment (which a browser never sends to a server):
the page keeps it for its tab and sends it as `Authorization: Bearer`, like any client."""

from __future__ import annotations

import hmac
import json
import secrets
import sys

import click

from ..errors import AuthenticationError, UsageError
from .cli import LOOPBACK, _app, _store_url, listen, when_started


class RunKeyAuthenticator:
    """Every request needs this run's key; it is the local user's (the untenanted store)."""

    keys = None
    enabled = True

    def __init__(self, key: str) -> None:
        self._key = key

    def principal(self, authorization: str | None):
        from .tenants import LOCAL_PRINCIPAL

        scheme, _, secret = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(secret.strip().encode(), self._key.encode()):
            raise AuthenticationError("missing or wrong key: open the address `engram ui` printed")
        return LOCAL_PRINCIPAL


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback only).")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--store", "store", metavar="URL", help="Store URL (default: the global --store, then the config).")
@click.option("--no-open", is_flag=True, help="Print the address; do not open a browser.")
@click.option("--json", "as_json", is_flag=True, help="Print the address as one JSON line when ready.")
def ui(host: str, port: int, store: str | None, no_open: bool, as_json: bool) -> None:
    """Open the web inspector on the local store: users, timelines, histories, a search
    playground, the job queue and erasure receipts.

    Serves on HOST:PORT with a key made for this run, which the printed address carries."""
    if host not in LOOPBACK:
        raise UsageError(f"engram ui serves the local store to its own user; it listens on loopback only, not {host} "
                         "(for a shared server, run `engram serve` with API keys and open /ui)")
    from . import require_server_deps

    require_server_deps()
    import uvicorn

    from .logs import configure
    from .rest import create_app
    from .tenants import TenantRegistry

    key = secrets.token_urlsafe(24)
    registry = TenantRegistry(_store_url(store), _app().config)
    try:
        sock, base = listen(host, port)
    except UsageError:
        registry.close()
        raise
    address = f"{base}/ui/#key={key}"
    configure(sys.stderr)
    app = create_app(registry, RunKeyAuthenticator(key), mcp=False, host=host)  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))

    def announce() -> None:
        if as_json:
            click.echo(json.dumps({"url": base, "ui": address}))
        else:
            click.echo(f"engram: the inspector is at {address}", err=True)
        sys.stdout.flush()
        if not no_open:
            import webbrowser

            webbrowser.open(address)

    when_started(server, announce)
    server.run(sockets=[sock])
