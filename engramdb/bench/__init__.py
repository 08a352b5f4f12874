"""Benchmarks (`engram bench ingest|search`): throughput and latency measured through
the public `Memory` API. Not tests: they report numbers, they do not assert them."""
