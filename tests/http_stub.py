"""A real HTTP server on 127.0.0.1 whose answers a test scripts: for the OpenAI-compatible
clients (chat, embeddings) that must be tested over a real socket."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Respond = Callable[[str, dict[str, Any]], tuple[int, Any]]


@contextmanager
def json_server(respond: Respond) -> Iterator[str]:
    """Serve POSTs with `respond(path, body) -> (status, payload)` (payload: bytes, or
    anything json.dumps takes); yields the base URL, ending in /v1."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, payload = respond(self.path, body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def chat_completion(content: str, prompt_tokens: int = 50, completion_tokens: int = 10) -> dict[str, Any]:
    """An OpenAI chat completion carrying `content`."""
    return {"choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}
