"""/metrics as an operator reads it (issue 13): requests by route and status, latency
histograms by route, queue depth and failed jobs, each open tenant's store size; no
stored text, no user id and no tenant name in it."""

from __future__ import annotations

from server_helpers import start_deployment, stop_deployment

from engramdb.stores import tenant_slug


def values(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_metrics_give_latency_histograms_and_store_sizes_per_tenant(tmp_path):
    live, server = start_deployment(tmp_path)
    try:
        acme, globex = server.client("acme"), server.client("globex")
        for text in ("alice's secret is the blue door", "alice likes tea"):
            assert acme.post("/v1/memories", json={"messages": text, "user_id": "alice"}).status_code == 201
        assert globex.post("/v1/memories", json={"messages": "bob's turn", "user_id": "bob"}).status_code == 201
        assert acme.post("/v1/memories/search", json={"query": "door", "user_id": "alice"}).status_code == 200
        assert acme.get("/v1/memories/mem_nope").status_code == 404
        text = acme.get("/metrics").text
    finally:
        stop_deployment(live, server)

    found = values(text)
    assert "# TYPE engram_http_request_duration_seconds histogram" in text
    route = 'method="POST",route="/v1/memories"'
    assert found[f'engram_http_request_duration_seconds_count{{{route}}}'] == 3
    assert found[f'engram_http_request_duration_seconds_bucket{{{route},le="+Inf"}}'] == 3
    buckets = [v for k, v in found.items() if k.startswith(f"engram_http_request_duration_seconds_bucket{{{route},")]
    assert buckets == sorted(buckets), "histogram buckets are cumulative"
    assert found[f'engram_http_request_duration_seconds_sum{{{route}}}'] > 0
    assert found['engram_http_requests_total{method="GET",route="/v1/memories/{memory_id}",status="404"}'] == 1
    assert found[f'engram_store_records{{tenant="{tenant_slug("acme")}"}}'] == 2
    assert found[f'engram_store_records{{tenant="{tenant_slug("globex")}"}}'] == 1
    assert found[f'engram_store_bytes{{tenant="{tenant_slug("acme")}"}}'] > 0
    assert 'engram_jobs{state="failed"}' in found and 'engram_jobs{state="pending"}' in found
    for secret in ("acme", "globex", "alice", "bob", "blue door", "tea", "mem_nope"):
        assert secret not in text
