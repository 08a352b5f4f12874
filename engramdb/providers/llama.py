"""The packaged local model in llama.cpp: the one loader `engram bench locomo
--local-model`, `engram bench activation` and `engram chat` share, with the make commands
that build what is missing (Makefile: `make slow-test`'s parts, in .slow/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependencyError

MAKE_LLAMA = "make .slow/.installed-llama"
MAKE_MODEL = "make .slow/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
N_CTX = 4096


def load_llama(path: str | Path, *, n_ctx: int = N_CTX, n_threads: int | None = None, seed: int = 0) -> Any:
    """A llama_cpp.Llama over the GGUF at `path`; a clear error naming the make command for
    what is missing (run from the repository, with PYTHONPATH=.slow/site): a
    MissingDependencyError without llama-cpp-python, a ConfigError without the model file."""
    path = Path(path)
    has_llama = importlib.util.find_spec("llama_cpp") is not None
    missing = [] if has_llama else [f"llama-cpp-python is not importable: build it with `{MAKE_LLAMA}` and run "
                                    "with PYTHONPATH=.slow/site"]
    if not path.is_file():
        missing.append(f"no model file at {path}: assemble it with `{MAKE_MODEL}`")
    if missing:
        raise (ConfigError if has_llama else MissingDependencyError)("; ".join(missing))
    import llama_cpp

    return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, seed=seed, verbose=False)
