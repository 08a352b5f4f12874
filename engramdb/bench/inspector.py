"""`engram bench inspector`: how fast the web inspector's pages paint on a big store.

One user holds `memories` turns (synthetic, in sessions of 2,000; a fake embedder: no
page here embeds anything), some of them erased (receipts). The server is the real one
(`create_app`, uvicorn on 127.0.0.1) and the browser a real headless Chromium. Each page
is loaded afresh `loads` times; its first paint is the time from the navigation's start
to the first frame painted after the page's data was rendered (app.js marks it), as the
browser's own clock (`performance.now()`) reads it."""

from __future__ import annotations

import json
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

from . import synthetic

USER = "bench-user"
BATCH = 2000
ERASED = 200


def build(path: Path, size: int) -> dict[str, Any]:
    """The store at `path` with `size` turns for USER (built once, then reused)."""
    from ..config import Config
    from ..memory import Memory
    from ..providers.fake import FakeEmbedder

    marker = path.with_suffix(".json")
    if marker.exists():
        return json.loads(marker.read_text())
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with Memory(path, config=Config(extractor="none"), embedder=FakeEmbedder()) as mem:
        batch: list[dict] = []
        for index, message in enumerate(synthetic.turns(size + ERASED)):
            batch.append(message)
            if len(batch) == BATCH or index == size + ERASED - 1:
                mem.add(batch, user_id=USER, session_id=f"s{index // BATCH}")
                batch = []
        for record in mem.list(user_id=USER, limit=ERASED, offset=size // 2):
            mem.delete(record.id)
        info = {"memories": mem.store.count(_scope()), "erased": ERASED,
                "build_s": round(time.perf_counter() - started, 1)}
    marker.write_text(json.dumps(info))
    return info


def _scope():
    from ..types import Scope

    return Scope(USER)


def run(*, memories: int = 100_000, loads: int = 10, cache: Path = Path(".bench")) -> dict[str, Any]:
    import socket
    import threading

    import uvicorn

    from ..config import Config
    from ..memory import Memory
    from ..providers.fake import FakeEmbedder
    from ..server.rest import create_app
    from ..server.tenants import TenantRegistry
    from ..server.ui import RunKeyAuthenticator
    from .browser import Browser

    path = cache / f"inspector-{memories}.db"
    info = build(path, memories)
    with Memory(path, config=Config(extractor="none"), embedder=FakeEmbedder()) as mem:  # migrated, if older
        some = mem.list(user_id=USER, limit=1, offset=memories // 3)[0]
        deep = mem.list(user_id=USER, limit=1, offset=memories - 100)[0]
    from ..server.inspector import cursor_for

    key = secrets.token_urlsafe(24)
    registry = TenantRegistry(path, Config(extractor="none"), embedder=FakeEmbedder())
    app = create_app(registry, RunKeyAuthenticator(key), mcp=False)  # type: ignore[arg-type]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY: no Nagle delay
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    pages = {
        "users": "#/users",
        "timeline (first page)": f"#/user/{USER}",
        "timeline (a page near the end)": f"#/user/{USER}?cursor={cursor_for(deep.created_at, 0)}",
        "memory and its history": f"#/memory/{some.id}",
        "search playground": "#/search",
        "jobs": "#/jobs",
        "erasure receipts": f"#/erasures?user={USER}",
    }
    browser = Browser()
    driver = browser.driver
    results: dict[str, Any] = {}
    try:
        driver.get(f"{url}/ui/#key={key}")
        _painted(driver)
        count = 0
        for name, page in pages.items():
            times = []
            for _ in range(loads + 1):  # the first load of each page warms caches and is not counted
                count += 1
                driver.get(f"{url}/ui/?load={count}{page}")
                times.append(_painted(driver))
            times = times[1:]
            results[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}
    finally:
        browser.close()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    return {"memories": info["memories"], "erased": info["erased"], "loads": loads, "pages": results,
            "build_s": info.get("build_s")}


def _painted(driver) -> float:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.painted || null"))
    if driver.execute_script("return document.querySelector('main .error') !== null"):
        raise RuntimeError(f"the page failed: {driver.find_element('css selector', 'main').text}")
    return float(driver.execute_script("return document.body.dataset.painted"))


def table(result: dict[str, Any]) -> str:
    lines = [f"first paint of the inspector's pages, {result['memories']:,} memories of one user "
             f"({result['erased']} erased), {result['loads']} fresh loads each", "",
             f"{'page':34} {'median ms':>10} {'max ms':>8}"]
    for name, row in result["pages"].items():
        lines.append(f"{name:34} {row['median_ms']:>10.1f} {row['max_ms']:>8.1f}")
    return "\n".join(lines)
