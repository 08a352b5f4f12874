"""A scripted OpenAI-compatible server on 127.0.0.1, for the proxy's tests and benchmark:
`/v1/models` and `/v1/chat/completions`, streamed (server-sent events, chunked) and not,
over real HTTP/1.1 with keep-alive. It records every request it gets and answers what
`reply(body)` says; a streamed answer goes out one word a chunk, and can be held after
its first chunk until `release` is set (to see that a proxy passes chunks on unbuffered)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from .local_llm import send_json

MODEL = "stub-model"
HOLD_S = 10.0  # a held stream waits at most this long for `release`


def echo(body: dict[str, Any]) -> str:
    """The default answer: what the last user message said."""
    users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
    last = users[-1].get("content") if users else ""
    return f"You said: {last}" if isinstance(last, str) else "You said something."


class ScriptedUpstream:
    def __init__(self, reply: Callable[[dict[str, Any]], str] = echo, *, model: str = MODEL) -> None:
        self.reply = reply
        self.model = model
        self.requests: list[dict[str, Any]] = []  # bodies of the chat requests, in order
        self.headers: list[dict[str, str]] = []  # their headers
        self.fail: tuple[int, Any] | None = None  # (status, body): every chat request is answered with it
        self.break_stream = False  # streamed answers stop after their first word, the connection dropped
        self.hold = False  # streamed answers wait after their first chunk until `release` is set
        self.release = threading.Event()
        self.released_in_time: list[bool] = []
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() it first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "ScriptedUpstream":
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                if self.path != "/v1/models":
                    return self._json(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})
                self._json(200, {"object": "list", "data": [{"id": upstream.model, "object": "model",
                                                             "created": 0, "owned_by": "engram-tests"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})
                upstream.requests.append(body)
                upstream.headers.append({k.lower(): v for k, v in self.headers.items()})
                if upstream.fail is not None:
                    return self._json(*upstream.fail)
                text = upstream.reply(body)
                if body.get("stream"):
                    return self._stream(text)
                self._json(200, {
                    "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()),
                    "model": upstream.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 10}})

            def _json(self, status: int, payload: Any) -> None:
                send_json(self, status, payload)

            def _stream(self, text: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                words = text.split(" ")
                pieces = [{"role": "assistant", "content": ""}] + [
                    {"content": (w if i == 0 else " " + w)} for i, w in enumerate(words)]
                for index, delta in enumerate(pieces):
                    self._event({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0,
                                 "model": upstream.model,
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                    if index == 1 and upstream.break_stream:
                        self.close_connection = True
                        self.wfile.flush()
                        self.connection.shutdown(2)  # noqa: SIM115  (socket.SHUT_RDWR)
                        return
                    if index == 1 and upstream.hold:
                        upstream.released_in_time.append(upstream.release.wait(HOLD_S))
                self._event({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0,
                             "model": upstream.model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _event(self, payload: dict[str, Any]) -> None:
                self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self.release.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(5)
            self._httpd = None

    def __enter__(self) -> "ScriptedUpstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
