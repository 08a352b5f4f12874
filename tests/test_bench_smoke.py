"""The benchmarks run end to end at tiny sizes with the fake embedder. Not a timing test:
it checks that each command reports the numbers it promises."""

from __future__ import annotations

import json

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
