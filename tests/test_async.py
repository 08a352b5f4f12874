"""AsyncMemory: the same methods as Memory, awaited (plain asyncio.run, no plugin)."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from engramdb import AsyncMemory, InvalidInputError, Memory, NotFoundError, UsageError
from engramdb.aio import METHODS
from engramdb.providers.fake import FakeEmbedder


def test_every_public_memory_method_has_an_async_twin():
    public = {name for name, _ in inspect.getmembers(Memory, inspect.isfunction) if not name.startswith("_")}
    assert public <= set(METHODS) | {"embedder", "store"}
    for name in METHODS:
        assert inspect.iscoroutinefunction(getattr(AsyncMemory, name)), name
        assert inspect.signature(getattr(AsyncMemory, name)) == inspect.signature(getattr(Memory, name))


def test_full_lifecycle(tmp_path):
    async def main():
        async with AsyncMemory(tmp_path / "a.db", embedder=FakeEmbedder()) as mem:
            added = await mem.add(
                [{"id": "t1", "content": "I bought a red bicycle", "timestamp": "2024-01-01T10:00:00Z"},
                 {"role": "assistant", "content": "Enjoy riding it", "timestamp": "2024-01-01T10:01:00Z"}],
                user_id="alice", session_id="s1",
            )
            assert len(added) == 2
            rid = added.ids[0]
            hits = await mem.search("red bicycle", user_id="alice")
            assert hits[0].id == rid and hits[0].sources == ["t1"]
            assert (await mem.get(rid)).text == "I bought a red bicycle"
            assert [r.text for r in await mem.list(user_id="alice")] == ["I bought a red bicycle", "Enjoy riding it"]
            updated = await mem.update(rid, "I bought a blue bicycle", reason="colour")
            assert updated.text == "I bought a blue bicycle"
            assert [v.event for v in await mem.history(rid)] == ["add", "update"]
            block = await mem.context("bicycle", user_id="alice", budget_tokens=200)
            assert "] user: I bought a blue bicycle" in block
            stats = await mem.stats(user_id="alice")
            assert stats["records"] == 2

            cube = tmp_path / "alice.jsonl"
            assert await mem.export(cube, user_id="alice") == 2
            await mem.delete(rid)
            with pytest.raises(NotFoundError):
                await mem.get(rid)
            assert await mem.import_(cube) == 1  # only the deleted one was missing
            assert (await mem.get(rid)).text == "I bought a blue bicycle"

            assert await mem.forget(user_id="alice", session_id="s1") == 2
            assert await mem.list(user_id="alice") == []
            await mem.flush()
            with pytest.raises(UsageError):
                await mem.reset()
            await mem.add("x", user_id="bob")
            await mem.reset(confirm=True)
            assert (await mem.stats())["records"] == 0
        return mem

    mem = asyncio.run(main())
    with pytest.raises(UsageError, match="closed"):
        mem.sync.list(user_id="alice")  # closed by the async context manager


def test_errors_propagate_typed(tmp_path):
    async def main():
        mem = AsyncMemory(tmp_path / "a.db", embedder=FakeEmbedder())
        try:
            with pytest.raises(InvalidInputError):
                await mem.add(5, user_id="alice")
            with pytest.raises(InvalidInputError):
                await mem.search("", user_id="alice")
            with pytest.raises(NotFoundError):
                await mem.history("mem_nope")
            assert (await mem.stats())["records"] == 0
        finally:
            await mem.close()

    asyncio.run(main())


def test_concurrent_adds_and_searches(tmp_path):
    async def main():
        async with AsyncMemory(tmp_path / "a.db", embedder=FakeEmbedder()) as mem:
            results = await asyncio.gather(
                *(mem.add([f"note {i} about topic{i}", f"second note {i}"], user_id=f"user{i % 3}",
                          session_id=f"s{i}") for i in range(24))
            )
            assert sum(len(r) for r in results) == 48
            assert len({rid for r in results for rid in r.ids}) == 48
            for u in range(3):
                assert len(await mem.list(user_id=f"user{u}")) == 16
            searches = await asyncio.gather(*(mem.search(f"topic{i}", user_id=f"user{i % 3}") for i in range(24)))
            for i, hits in enumerate(searches):
                assert hits[0].text == f"note {i} about topic{i}"
                assert hits[0].session_id == f"s{i}"
            return (await mem.stats())["records"]

    assert asyncio.run(main()) == 48


def test_wraps_an_existing_memory(mem):
    async def main():
        wrapped = AsyncMemory(memory=mem)
        assert wrapped.sync is mem
        await wrapped.add("shared instance", user_id="alice")
        return repr(wrapped)

    assert asyncio.run(main()).startswith("AsyncMemory(")
    assert [r.text for r in mem.list(user_id="alice")] == ["shared instance"]
