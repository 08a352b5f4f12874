"""`engram proxy`: the OpenAI-compatible memory proxy, added to the main CLI. The web
stack is imported only when the command runs."""

from __future__ import annotations

import json
import sys

import click

from ..errors import UsageError
from ..server.cli import _print_line, listen, when_started

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORT = 8766


@click.command()
@click.option("--upstream", required=True, metavar="URL",
              help="The OpenAI-compatible server's base URL, the one its clients take, e.g. "
                   "http://127.0.0.1:8080/v1 or https://api.openai.com/v1.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port; see --json).")
@click.option("--store", "store", metavar="URL", help="Store URL (default: the global --store, then the config).")
@click.option("--no-auth", is_flag=True,
              help="No Engram API keys: requests use the untenanted store, and the caller's Authorization "
                   "goes to the upstream (local use only).")
@click.option("--user", "default_user", metavar="ID",
              help="With --no-auth: the user of a request that names none (header X-Engram-User, or `user`).")
@click.option("--budget", "budget_tokens", type=click.IntRange(34, 1_000_000), default=None,
              help="Tokens of memory per request [default: config proxy_budget_tokens, 1500].")
@click.option("--upstream-key", envvar="ENGRAM_UPSTREAM_API_KEY", metavar="KEY",
              help="The upstream's API key [env ENGRAM_UPSTREAM_API_KEY]; without it and with --no-auth, the "
                   "caller's own Authorization is passed on.")
@click.option("--upstream-timeout", type=click.FloatRange(min=0.1), default=600.0, show_default=True,
              help="Seconds to wait for the upstream's answer.")
@click.option("--memory-timeout", type=click.FloatRange(min=0.01), default=5.0, show_default=True,
              help="A memory lookup slower than this many seconds is given up: the request goes on without memory.")
@click.option("--placement", type=click.Choice(["front", "split"]), default="front", show_default=True,
              help="front: one memory message after the caller's system prompt. split: the long-lived memories "
                   "there, the query's just before the latest user message (prefix caches then keep the "
                   "conversation too; needs a chat template that takes a system message mid-conversation).")
@click.option("--keys", "keys_file", metavar="FILE", envvar="ENGRAM_KEYS",
              help="An API keys file (SQLite) [env ENGRAM_KEYS; default: beside a SQLite store].")
@click.option("--json", "as_json", is_flag=True, help="Print where the proxy listens as one JSON line when ready.")
def proxy(upstream: str, host: str, port: int, store: str | None, no_auth: bool, default_user: str | None,
          budget_tokens: int | None, upstream_key: str | None, upstream_timeout: float, memory_timeout: float,
          placement: str, keys_file: str | None, as_json: bool) -> None:
    """Serve OpenAI's chat API on HOST:PORT in front of UPSTREAM, with memory.

    Each request's user is the X-Engram-User header, the body's `user` field, or the API
    key's default user. Before forwarding, what matters for the conversation goes in as
    a system message; after the answer, the exchange is stored. See docs/proxy.md."""
    if not upstream.startswith(("http://", "https://")):
        raise UsageError(f"--upstream must be an http:// or https:// URL, got {upstream!r}")
    if no_auth and host not in LOOPBACK:
        raise UsageError(f"--no-auth serves every memory to whoever connects; it listens on loopback only, not {host}")
    if default_user is not None and not no_auth:
        raise UsageError("--user goes with --no-auth; with keys, a key's default user is the user "
                         "(engram keys create --user)")
    from ..server import require_server_deps

    require_server_deps()
    import uvicorn

    from ..server.scopes import check_name

    check_name("--user", default_user, required=False)
    root = click.get_current_context().find_root().obj
    config = root.config
    url = store or root.store or config.store
    app, where = _build(url, config, upstream, no_auth, default_user, budget_tokens or config.proxy_budget_tokens,
                        upstream_key, upstream_timeout, memory_timeout, keys_file, placement == "split")
    sock, base = listen(host, port)
    where = {"url": f"{base}/v1", **where}
    from ..server.logs import configure

    configure(sys.stderr)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))

    def announce() -> None:
        if as_json:
            _print_line(json.dumps(where))
        else:
            click.echo(f"engram: proxying {where['url']} to {upstream}"
                       + ("" if where["auth"] else " without API keys (--no-auth)"), err=True)

    when_started(server, announce)
    server.run(sockets=[sock])


def _build(url, config, upstream_url, no_auth, default_user, budget_tokens, upstream_key, upstream_timeout,
           memory_timeout, keys_file, split):
    from ..server.access import ScopedMemory
    from ..server.auth import Authenticator
    from ..server.keys import open_key_store
    from ..server.tenants import TenantRegistry
    from .app import ProxyOptions, create_app
    from .forward import Upstream
    from .inject import Injector

    registry = TenantRegistry(url, config)
    try:
        keys = None if no_auth else open_key_store(url, keys_file)
    except BaseException:
        registry.close()
        raise

    def memories(who):
        memory = registry.memory(who.tenant)
        return memory if keys is None else ScopedMemory(memory, who)

    def close() -> None:
        registry.close()
        if keys is not None:
            keys.close()

    options = ProxyOptions(budget_tokens=budget_tokens, default_user=default_user, memory_timeout_s=memory_timeout,
                           max_body_bytes=config.max_request_bytes)
    app = create_app(Upstream(upstream_url, api_key=upstream_key, timeout_s=upstream_timeout), memories,
                     Authenticator(keys), options=options, injector=Injector(split=split),
                     on_start=lambda: registry.embedder.embed(["ready"]), on_close=close)
    return app, {"upstream": upstream_url, "auth": not no_auth}
