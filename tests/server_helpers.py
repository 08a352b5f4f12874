"""A real Engram server on 127.0.0.1 (an ephemeral port, uvicorn in a thread) for tests."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from engramdb.config import Config
from engramdb.providers.fake import FakeEmbedder
from engramdb.server.auth import Authenticator
from engramdb.server.keys.sqlite import SQLiteKeyStore, keys_path
from engramdb.server.rest import create_app
from engramdb.server.tenants import TenantRegistry


class LiveServer:
    """uvicorn serving `app` on a socket bound here, so the port is known before start."""

    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@dataclass
class Deployment:
    """A running server with three keys: acme (read-write), acme (read-only), globex."""

    url: str
    store: Path
    keys: SQLiteKeyStore | None
    secrets: dict[str, str] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, who: str | None = "acme", **headers: str) -> httpx.Client:
        if who is not None:
            headers["Authorization"] = f"Bearer {self.secrets[who]}"
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self.clients.append(client)
        return client


def start_deployment(tmp_path: Path, *, auth: bool = True, max_body_bytes: int | None = None):
    store = tmp_path / "engram.db"
    keys = SQLiteKeyStore(keys_path(store)) if auth else None
    registry = TenantRegistry(store, Config(max_limit=50), embedder=FakeEmbedder())
    app = create_app(registry, Authenticator(keys), max_body_bytes=max_body_bytes)
    live = LiveServer(app).start()
    deployment = Deployment(url=live.url, store=store, keys=keys)
    if keys is not None:
        deployment.secrets = {
            "acme": keys.create("acme", name="rw").secret,
            "acme-ro": keys.create("acme", read_only=True, name="ro").secret,
            "globex": keys.create("globex").secret,
        }
    return live, deployment


def stop_deployment(live: LiveServer, deployment: Deployment) -> None:
    for client in deployment.clients:
        client.close()
    live.stop()


def over_mcp(deployment: Deployment, who: str, calls):
    """Run `calls(client)` (a coroutine function) in an MCP session over streamable HTTP,
    authenticated with the key `who`; its result."""
    import asyncio

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        headers = {"Authorization": f"Bearer {deployment.secrets[who]}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with Client(streamable_http_client(deployment.url + "/mcp", http_client=http)) as client:
                return await calls(client)

    return asyncio.run(run())
