"""The benchmarks run end to end at tiny sizes with the fake embedder. Not a timing test:
it checks that each command reports the numbers it promises."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from click.testing import CliRunner

from engramdb.bench.cli import bench


def _run(args: list[str]) -> dict:
    result = CliRunner().invoke(bench, args + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def test_bench_ingest_reports_throughput(tmp_path):
    report = _run(["ingest", "--turns", "50", "--batch", "16", "--embedder", "fake", "--synthetic",
                   "--store", str(tmp_path / "ingest.db")])
    assert report["turns"] == report["stored"] == 50
    for key in ("turns_per_s", "embed_s", "store_s", "total_s", "peak_rss_mb"):
        assert _is_number(report[key]), key
    assert report["add_latency_ms"]["n"] == 4
    for key in ("p50", "p95", "p99"):
        assert _is_number(report["add_latency_ms"][key])


def test_bench_search_reports_latency_and_reuses_the_store(tmp_path):
    args = ["search", "--sizes", "300,600", "--queries", "5", "--pool", "40", "--embedder", "fake",
            "--dir", str(tmp_path)]
    report = _run(args)
    assert [row["stored"] for row in report["results"]] == [300, 600]
    for row in report["results"]:
        assert row["index"] == "exact"
        for key in ("p50", "p95", "p99"):
            assert _is_number(row["search_ms"][key])
        assert set(row["breakdown_ms"]) == {"embed", "vector", "keyword", "fetch"}
        assert all(_is_number(part["p95"]) for part in row["breakdown_ms"].values())
        assert _is_number(row["first_search_s"]) and _is_number(row["bulk_load_s"])
    again = _run(args)  # cached: the stores are not built a second time
    assert [row["bulk_load_s"] for row in again["results"]] == [row["bulk_load_s"] for row in report["results"]]
    assert again["pool_embed_s"] == "cached"


def _tiny_locomo(path):
    """Two conversations shaped like locomo10.json (sessions, dates, dia_ids, a photo,
    packed and malformed evidence ids, a category-5 question)."""
    samples = []
    for n, (a, b) in enumerate([("Ana", "Ben"), ("Cy", "Dee")]):
        conversation = {"speaker_a": a, "speaker_b": b}
        for s in (1, 2):
            conversation[f"session_{s}_date_time"] = f"1:56 pm on {s + 7} May, 2023"
            conversation[f"session_{s}"] = [
                {"speaker": a, "dia_id": f"D{s}:1", "text": f"I adopted a dog named Rex{s} last week."},
                {"speaker": b, "dia_id": f"D{s}:2", "text": "Nice! I started painting lakes.",
                 "blip_caption": "a photo of a lake painting"},
                {"speaker": a, "dia_id": f"D{s}:3", "text": f"My sister moved to Porto{n} in spring."},
            ]
        samples.append({
            "sample_id": f"conv-{n}",
            "conversation": conversation,
            "qa": [
                {"question": f"What is the name of {a}'s dog?", "answer": "Rex1", "evidence": ["D1:1"], "category": 4},
                {"question": f"What does {b} paint?", "answer": "lakes", "evidence": ["D1:2; D2:2"], "category": 1},
                {"question": f"Where did {a}'s sister move?", "answer": "Porto", "evidence": ["D:2:3"], "category": 2},
                {"question": "Does Ana like cats?", "adversarial_answer": "yes", "evidence": ["D1:1"], "category": 5},
            ],
        })
    path.write_text(json.dumps(samples))
    return path


def test_bench_locomo_reports_recall_per_retriever(tmp_path):
    data = _tiny_locomo(tmp_path / "locomo.json")
    args = ["locomo", "--locomo", str(data), "--embedder", "fake", "--store", str(tmp_path / "locomo.db")]
    report = _run(args)
    assert report["conversations"] == 2 and report["turns"] == 12 and report["turns_added"] == 12
    assert report["questions"] == 6  # category 5 is left out
    assert set(report["rows"]) == {"bm25 (turns)", "dense (turns)", "engram", "engram recall()", "everything"}
    for name in ("bm25 (turns)", "dense (turns)", "engram"):
        row = report["rows"][name]
        assert set(row["metrics"]) == {"overall", "multi-hop", "temporal", "single-hop"}
        for key in ("R@5", "R@10", "R@20", "R≤1000", "R≤2000"):
            assert 0 <= row["metrics"]["overall"][key] <= 1
        assert _is_number(row["latency_ms"]["p95"])
    # 6 turns per conversation: everything fits in 1,000 tokens, so recall is complete
    assert report["rows"]["engram"]["metrics"]["overall"]["R≤1000"] == 1.0
    # recall() returns the whole small memory: every evidence turn, at both budgets
    # … in a block of a few hundred characters: its first evidence line starts within 1,000,
    # after the preamble at least
    assert report["rows"]["engram recall()"]["metrics"]["overall"] == {"R≤1000": 1.0, "R≤2000": 1.0,
                                                                       "lead≤1000": 1.0, "n": 6}
    assert report["rows"]["engram recall()"]["lead_chars_p50"] > len("Remembered conversation")
    assert report["rows"]["everything"]["tokens_per_conversation"] > 0
    again = _run(args)  # the store is reused, not ingested twice
    assert again["turns_added"] == 0
    table = CliRunner().invoke(bench, args + ["--conversations", "1"])
    assert table.exit_code == 0, table.output
    assert "engram" in table.stdout and "multi-hop" in table.stdout and "ingest:" in table.stdout
    assert "first evidence line within 1,000 characters 1.000" in table.stdout


def test_evidence_lead_counts_the_characters_before_the_first_line_resting_on_evidence():
    from engramdb.bench.recall import evidence_lead
    from engramdb.types import Hit, Recall

    def hit(id, sources):
        return Hit(id=id, text="x", kind="turn", score=1.0, sources=sources, session_id=None,
                   created_at="2024-01-01T00:00:00Z", valid_to=None)

    text = "Preamble:\n- [1 January 2024] user: first\n- [1 January 2024] user: second"
    block = Recall(text=text, hits=[hit("a", ["a"]), hit("b", ["b", "c"])], complete=True)
    assert evidence_lead(block, frozenset({"a"})) == len("Preamble:\n")
    assert evidence_lead(block, frozenset({"c"})) == len("Preamble:\n- [1 January 2024] user: first\n")
    assert evidence_lead(block, frozenset({"z"})) is None


def test_locomo_loader_facts():
    from engramdb.bench import locomo

    path = locomo.default_path()
    if not path.exists():
        pytest.skip(f"LoCoMo is not at {path}; set ENGRAM_LOCOMO to locomo10.json to run this test")
    conversations = locomo.load(path)
    assert len(conversations) == 10
    assert sum(c.turn_count for c in conversations) == 5_882
    assert sum(len(c.questions) for c in conversations) == 1_986
    assert sum(len(messages) for c in conversations for _, messages in c.sessions) == 5_882
    ids = [m["id"] for c in conversations for _, ms in c.sessions for m in ms]
    assert len(set(ids)) < len(ids)  # dia_ids repeat across conversations, never within one
    for conv in conversations:
        known = {m["id"] for _, ms in conv.sessions for m in ms}
        assert len(known) == conv.turn_count
        assert all(q.evidence <= known for q in conv.questions)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_bench_load_reports_throughput_latency_and_lost_writes(backend):
    pytest.importorskip("fastapi")
    # not under pytest's basetemp: PostgreSQL runs as its own user there (see conftest.postgres_url)
    tmp_path = Path(tempfile.mkdtemp(prefix="engram-bench-load-"))
    try:
        _check_load(backend, tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _check_load(backend: str, tmp_path: Path) -> None:
    report = _run(["load", "--backend", backend, "--preload", "300", "--pool", "40", "--clients", "3",
                   "--seconds", "1.5", "--warmup", "0.5", "--embedder", "fake", "--extractor", "none",
                   "--dir", str(tmp_path)])
    assert report["backend"] == backend and report["preload"] == 300 and report["clients"] == 3
    for kind in ("adds", "searches"):
        assert report[kind]["ok"] > 0 and _is_number(report[kind]["per_s"])
        for key in ("p50", "p95", "p99"):
            assert _is_number(report[kind]["latency_ms"][key])
    assert report["errors"] == {"count": 0, "by_status": {}}
    assert report["acknowledged_records"] == 2 * report["acknowledged_adds"] > 0
    assert report["lost_writes"] == 0 and report["verify_read_errors"] == {}
    assert (tmp_path / "load" / f"{backend}-fake-300" / "build.json").exists()  # the pre-loaded store is cached
