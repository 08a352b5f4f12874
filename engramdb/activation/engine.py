"""The local model behind a small seam: tokenise segments, read a prefix into a state,
answer a prompt from a state (or cold).

`LlamaEngine` wraps a `llama_cpp.Llama` (llama-cpp-python, built by `make
.slow/.installed-llama`; run with PYTHONPATH=.slow/site). A state is the key/value cache
of sequence 0 after the prefix (`llama_state_seq_get_data`) and the prefix's tokens,
packed by `pack`. `answer` with a state restores it and evaluates only the tokens after
it; without one it reads the prefix afresh, then the rest: the same evaluation either
way, so greedy answers are the same with and without the cache (tests/test_activation.py,
`engram bench activation`). `FakeEngine` (tests: the behaviour under test is the state
files' lifecycle, not the model) keeps the prefix's text itself in its state, so a test
that scans the folder for erased text finds it while the state lives."""

from __future__ import annotations

import codecs
import ctypes
import hashlib
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..providers.llama import N_CTX, load_llama
from .prompt import Segment

MAGIC = b"ENGRAMKV"
VERSION = 1
MAX_TOKENS = 256


class Engine(Protocol):
    """What activation memory needs of a local model."""

    model_id: str  # the model file's sha256 and the settings a state depends on

    def tokens(self, segments: Sequence[Segment]) -> list[int]: ...

    def read(self, tokens: Sequence[int]) -> bytes:
        """Evaluate `tokens` in a fresh context; the state after them (`pack`ed)."""

    def answer(self, tokens: Sequence[int], *, prefix: int, state: bytes | None = None,
               max_tokens: int = MAX_TOKENS) -> Iterator[str]:
        """Greedy answer to the prompt `tokens`, streamed; `state`: the state after
        `tokens[:prefix]` (None: read it now)."""


def pack(tokens: Sequence[int], kv: bytes) -> bytes:
    return MAGIC + struct.pack("<II", VERSION, len(tokens)) + struct.pack(f"<{len(tokens)}i", *tokens) + kv


def unpack(state: bytes) -> tuple[list[int], bytes]:
    """(the prefix's tokens, the key/value bytes) of a packed state."""
    head = len(MAGIC) + 8
    if state[:len(MAGIC)] != MAGIC or len(state) < head:
        raise ValueError("not an Engram activation state")
    version, count = struct.unpack("<II", state[len(MAGIC):head])
    if version != VERSION:
        raise ValueError(f"activation state version {version}, this Engram reads {VERSION}")
    end = head + 4 * count
    return list(struct.unpack(f"<{count}i", state[head:end])), state[end:]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LlamaEngine:
    """One llama.cpp context (not thread-safe: one call at a time)."""

    def __init__(self, llm: Any, model_path: str | Path, *, model_sha256: str | None = None) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.llm = llm
        self.model_path = Path(model_path)
        sha = model_sha256 or file_sha256(self.model_path)
        self.model_id = f"{sha}:ctx{llm.n_ctx()}:seq-kv{VERSION}"
        end = llm.tokenize(b"<|im_end|>", add_bos=False, special=True)
        self._stops = {llm.token_eos(), *(end if len(end) == 1 else [])}

    @classmethod
    def load(cls, path: str | Path, *, n_ctx: int = N_CTX, n_threads: int | None = None,
             model_sha256: str | None = None) -> LlamaEngine:
        """The GGUF at `path`; a clear error naming the make command for what is missing."""
        llm = load_llama(path, n_ctx=n_ctx, n_threads=n_threads)
        return cls(llm, path, model_sha256=model_sha256)

    def tokens(self, segments: Sequence[Segment]) -> list[int]:
        out: list[int] = []
        for segment in segments:
            out += self.llm.tokenize(segment.text.encode("utf-8"), add_bos=False, special=segment.special)
        return out

    def _fresh(self) -> None:
        self.llm.reset()
        self._lib.llama_memory_clear(self._lib.llama_get_memory(self.llm.ctx), True)

    def read(self, tokens: Sequence[int]) -> bytes:
        self._fresh()
        self.llm.eval(list(tokens))
        size = self._lib.llama_state_seq_get_size(self.llm.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = self._lib.llama_state_seq_get_data(self.llm.ctx, buffer, size, 0)
        if written == 0 or written > size:
            raise RuntimeError("llama.cpp could not copy the sequence state")
        return pack(tokens, bytes(buffer)[:written])

    def _restore(self, state: bytes) -> int:
        tokens, kv = unpack(state)
        self._fresh()
        buffer = (ctypes.c_uint8 * len(kv)).from_buffer_copy(kv)
        if self._lib.llama_state_seq_set_data(self.llm.ctx, buffer, len(kv), 0) != len(kv):
            raise RuntimeError("llama.cpp refused the activation state (another model or context size?)")
        self.llm.input_ids[:len(tokens)] = tokens
        self.llm.n_tokens = len(tokens)
        return len(tokens)

    def _holds(self, tokens: Sequence[int]) -> bool:
        """Whether the context begins with `tokens` (the last turn of the same conversation
        left them there: generate() then reuses all it has in common with the prompt)."""
        held = self.llm.n_tokens
        return held >= len(tokens) and self.llm.input_ids[:len(tokens)].tolist() == list(tokens)

    def answer(self, tokens: Sequence[int], *, prefix: int, state: bytes | None = None,
               max_tokens: int = MAX_TOKENS) -> Iterator[str]:
        tokens = list(tokens)
        if not 0 < prefix < len(tokens):
            raise ValueError("the prompt must go on after its prefix")
        if state is not None:
            restored, _ = unpack(state)
            if restored != tokens[:prefix]:
                raise ValueError("the state was read from another prefix")
            if not self._holds(tokens[:prefix]):  # the context may hold it already, and this conversation's turns
                self._restore(state)
        else:
            self._fresh()
            self.llm.eval(tokens[:prefix])
        if len(tokens) + max_tokens > self.llm.n_ctx():
            raise ValueError(f"the prompt ({len(tokens)} tokens) and the answer do not fit the context")
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        made = 0
        # generate() finds the restored prefix in the context (its prefix match) and
        # evaluates only what follows it; temp 0 is llama.cpp's greedy sampler.
        for token in self.llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
            if token in self._stops:
                break
            piece = decoder.decode(self.llm.detokenize([token]))
            if piece:
                yield piece
            made += 1
            if made >= max_tokens:
                break
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest


class FakeEngine:
    """A stand-in with a character tokeniser whose state holds the prefix's text (tests:
    the state files' lifecycle). Its answer names the prompt's length and last words."""

    def __init__(self, model_id: str = "fake-model:ctx4096") -> None:
        self.model_id = model_id
        self.reads: list[int] = []  # prefix lengths read
        self.threads: list[str] = []  # the thread of each read
        self.answers: list[tuple[int, bool]] = []  # (prompt length, from a state)

    def tokens(self, segments: Sequence[Segment]) -> list[int]:
        return [ord(ch) for s in segments for ch in s.text]

    def read(self, tokens: Sequence[int]) -> bytes:
        self.reads.append(len(tokens))
        self.threads.append(threading.current_thread().name)
        return pack(tokens, "".join(map(chr, tokens)).encode("utf-8"))

    def answer(self, tokens: Sequence[int], *, prefix: int, state: bytes | None = None,
               max_tokens: int = MAX_TOKENS) -> Iterator[str]:
        if state is not None and unpack(state)[0] != list(tokens[:prefix]):
            raise ValueError("the state was read from another prefix")
        self.answers.append((len(tokens), state is not None))
        tail = "".join(map(chr, tokens[-40:])).split()
        yield f"({len(tokens)} tokens) "
        yield " ".join(tail[-3:])
