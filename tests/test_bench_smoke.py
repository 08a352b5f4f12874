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


def test_bench_search_with_the_graph_writes_the_edges_and_times_the_walk(tmp_path):
    from engramdb.bench.search import phrases

    assert phrases("Sven and I are planning a trip to Melbourne in August.") == ("sven", "trip", "melbourne", "august")
    report = _run(["search", "--sizes", "300", "--queries", "5", "--pool", "40", "--embedder", "fake",
                   "--dir", str(tmp_path), "--graph"])
    (row,) = report["results"]
    assert report["graph"] is True and row["graph_edges"] > 300  # a few phrases a turn
    assert {"graph_read", "graph_walk"} <= set(row["breakdown_ms"])
    assert row["graph_candidates_with_edges_mean"] > 0
    assert all(_is_number(row["search_cached_vector_ms"][state]["p95"]) for state in ("on", "off"))
    assert (tmp_path / "search" / "fake-hash-64-300-graph" / "build.json").exists()  # cached apart


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


def test_bench_ingest_long_shape_joins_sessions_and_reports_time_to_distilled(tmp_path):
    data = _tiny_locomo(tmp_path / "locomo.json")
    report = _run(["ingest", "--shape", "long", "--turns", "3", "--locomo", str(data), "--embedder", "fake",
                   "--extractor", "offline", "--store", str(tmp_path / "long.db")])
    # the tiny sessions are each shorter than the first size: one message per session,
    # one add per session, stopped after the third message
    assert report["shape"] == "long" and report["turns"] == report["stored"] == 3 and report["adds"] == 3
    assert report["tokens"] > 0 and report["distill_finished"] is True
    assert report["first_add_to_distilled_s"] >= report["total_s"]
    assert 0 <= report["embed_s"] <= report["total_s"] and report["store_s"] >= 0  # the add thread's time only
    assert report["derived_memories"]  # the joined lines were distilled
    assert _is_number(report["cpu_s"]["process"]) and report["cpu_s"]["children"] > 0  # spaCy's child


def test_long_history_joins_turns_as_speaker_lines(tmp_path):
    from engramdb.bench.ingest import long_history

    sessions = long_history(_tiny_locomo(tmp_path / "locomo.json"), messages=10)
    assert [sid for sid, _ in sessions] == ["conv-0/session_1", "conv-0/session_2", "conv-1/session_1",
                                            "conv-1/session_2"]
    first = sessions[0][1]
    assert len(first) == 1 and first[0]["role"] == "user" and "name" not in first[0]
    assert first[0]["content"].splitlines()[0] == "Ana: I adopted a dog named Rex1 last week."
    assert first[0]["content"].splitlines()[1].startswith("Ben: Nice! I started painting lakes.")


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


@pytest.mark.distill
def test_bench_lifecycle_reports_a_life(tmp_path):
    report = _run(["lifecycle", "--turns", "120", "--searches", "5", "--embedder", "fake", "--topics-at-flush",
                   "--store", str(tmp_path / "life.db")])
    assert report["turns"] == 120 and report["sessions"] == 12 and report["days"] == 730
    assert report["records"] == report["turns"] + report["derived"]
    assert report["derived_active"] + report["archived"] == report["derived"] and report["archived"] >= 0
    assert report["store_bytes"] > 0 and report["run_errors"] == 0
    for key in ("background_cpu_s", "background_cpu_s_per_1000_turns", "add_cpu_ms_per_turn", "life_s"):
        assert _is_number(report[key]), key
    assert report["profile_checks"] == 12  # every life event, each moment in a session of its own
    assert all(set(f) == {"turn", "states_new_truth", "unbounded_states_it", "profile_complete", "add_to_flush_s"}
               for f in report["profile_freshness"])
    assert report["profile_fresh_unbounded"] == report["profile_checks"]
    assert report["profile_fresh"] == report["profile_checks"], report["profile_freshness"]
    assert "Warsaw" in report["final_profile_home"]
    assert report["search_ms"]["n"] == 5 and _is_number(report["search_ms"]["p95"])
    assert any(k.startswith("distill: flush") for k in report["runs"])  # held for flush, as the bench schedules
    assert any(k.startswith("topics: flush") for k in report["runs"])  # --topics-at-flush
