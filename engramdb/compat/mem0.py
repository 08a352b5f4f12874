"""mem0's API on Engram: code written for `mem0.Memory` runs unchanged.

    from engramdb.compat.mem0 import Memory      # instead of: from mem0 import Memory

    m = Memory()                                  # Engram's embedded store; Memory("sqlite:///./m.db")
    m.add(messages, user_id="alice", metadata={"category": "movies"})
    m.search("What do you know about me?", user_id="alice", limit=5)   # {"results": [...]}
    m.get_all(user_id="alice"); m.get(id); m.update(id, "new text"); m.history(id)
    m.delete(id); m.delete_all(user_id="alice"); m.reset()

What differs, because Engram keeps more than mem0 does:
- Every message is stored as a turn (with your ids and timestamps as provenance), with
  `infer` or without; `infer=True` (the default) also waits for Engram's distillation
  of those turns (facts, preferences, events: offline, or with the LLM of `Config`) and
  returns the derived memories beside the turns. `infer=False` returns the turns at once.
- `run_id` is Engram's `session_id`. Memories scoped by `agent_id` or `run_id` alone live
  under the user id "agent:<id>" / "run:<id>" (Engram scopes every memory by a user).
- `delete()` and `delete_all()` erase: the text leaves the store, the indexes and the
  history (which keeps only hashes), and what was derived from it goes too.
- `score` is Engram's fused rank score (reciprocal rank fusion of keyword and dense
  search), not a cosine similarity: a `threshold` compares with that.
- Each result also carries Engram's `kind` ("turn", "fact", ...) and `sources`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from collections.abc import Mapping
from typing import Any

from ..config import Config
from ..errors import ConfigError, InvalidInputError, NotFoundError

ENTITY_KEYS = ("user_id", "agent_id", "run_id")
OPERATORS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"}
EVENTS = {"add": "ADD", "update": "UPDATE", "delete": "DELETE"}
_MISSING = "At least one of 'user_id', 'agent_id', or 'run_id' must be provided."


class Memory:
    """mem0's `Memory`, kept by an Engram `engramdb.Memory` (`self.engram`)."""

    def __init__(self, store: str | os.PathLike | None = None, *, config: Config | None = None,
                 memory: Any = None, **engram: Any) -> None:
        if memory is None:
            from ..memory import Memory as EngramMemory

            memory = EngramMemory(store, config=config, **engram)
        self.engram = memory

    @classmethod
    def from_config(cls, config_dict: Mapping[str, Any]) -> "Memory":
        """`{"store": "sqlite:///./m.db", "config": {...Engram Config fields...}}`. mem0's
        own provider sections have no meaning here and are refused by name."""
        if not isinstance(config_dict, Mapping):
            raise ConfigError(f"config must be a dict, got {type(config_dict).__name__}")
        unknown = set(config_dict) - {"store", "config", "version"}
        if unknown:
            raise ConfigError(
                f"Engram's mem0 facade does not take {sorted(unknown)}: Engram has its own store, embedder and "
                "extractor; give {'store': URL, 'config': {...engramdb.Config fields...}}")
        engram_config = config_dict.get("config")
        if isinstance(engram_config, Mapping):
            engram_config = Config(**engram_config)
        return cls(config_dict.get("store"), config=engram_config)

    # -- writes ------------------------------------------------------------------------

    def add(self, messages: Any, *, user_id: str | None = None, agent_id: str | None = None,
            run_id: str | None = None, metadata: Mapping[str, Any] | None = None, infer: bool = True,
            memory_type: str | None = None, prompt: str | None = None) -> dict[str, Any]:
        if memory_type is not None or prompt is not None:
            raise InvalidInputError("memory_type and prompt are mem0 options Engram does not have; "
                                    "configure distillation with engramdb.Config(extractor=...)")
        if not isinstance(infer, bool):
            raise InvalidInputError(f"infer must be True or False, got {type(infer).__name__}")
        scope = _scope(user_id, agent_id, run_id)
        added = self.engram.add(messages, **scope, metadata=metadata)
        results = [_item(r, event="ADD") for r in added.records]
        if infer and added.records:
            self.engram.flush()  # distillation of these turns (none to wait for with Config(extractor="none"))
            seen = {r.id for r in added.records}
            for record in added.records:
                for source in record.sources:
                    for derived in self.engram.list(user_id=scope["user_id"], filters={"source": source}):
                        if derived.id not in seen:
                            seen.add(derived.id)
                            results.append(_item(derived, event="ADD"))
        return {"results": results}

    def update(self, memory_id: str, data: str, metadata: Mapping[str, Any] | None = None) -> dict[str, str]:
        self.engram.update(memory_id, data, metadata=metadata)
        return {"message": "Memory updated successfully!"}

    def delete(self, memory_id: str) -> dict[str, str]:
        self.engram.delete(memory_id)
        return {"message": "Memory deleted successfully!"}

    def delete_all(self, user_id: str | None = None, agent_id: str | None = None,
                   run_id: str | None = None) -> dict[str, str]:
        scope = _scope(user_id, agent_id, run_id)
        self.engram.forget(**scope)
        return {"message": "Memories deleted successfully!"}

    def reset(self) -> None:
        """Erase every memory of every user (mem0's reset)."""
        self.engram.reset(confirm=True)

    # -- reads -------------------------------------------------------------------------

    def get(self, memory_id: str) -> dict[str, Any] | None:
        try:
            return _item(self.engram.get(memory_id))
        except NotFoundError:
            return None

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                filters: Mapping[str, Any] | None = None, limit: int = 100) -> dict[str, Any]:
        user_id, agent_id, run_id, conditions = _entities(filters, user_id, agent_id, run_id)
        records = self.engram.list(**_scope(user_id, agent_id, run_id), filters=conditions, limit=limit)
        return {"results": [_item(r) for r in records]}

    def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None, limit: int = 100, filters: Mapping[str, Any] | None = None,
               threshold: float | None = None, rerank: bool = True) -> dict[str, Any]:
        user_id, agent_id, run_id, conditions = _entities(filters, user_id, agent_id, run_id)
        limit = min(limit, self.engram.config.max_limit) if isinstance(limit, int) and limit > 0 else limit
        hits = self.engram.search(query, **_scope(user_id, agent_id, run_id), filters=conditions, limit=limit)
        return {"results": [_item(h, score=h.score, user_id=user_id, agent_id=agent_id) for h in hits
                            if threshold is None or h.score >= threshold]}

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        """mem0's history rows: each version with the text before and after it."""
        rows, previous = [], None
        for version in self.engram.history(memory_id):
            event = EVENTS.get(version.event, version.event.upper())
            rows.append({
                "id": f"{version.memory_id}:{version.version}", "memory_id": version.memory_id,
                "old_memory": previous, "new_memory": version.text, "event": event,
                "created_at": version.at, "updated_at": version.at, "is_deleted": version.event == "delete",
                "actor_id": version.actor, "role": None, "reason": version.reason,
            })
            previous = version.text if version.text is not None else previous
        return rows

    def close(self) -> None:
        self.engram.close()

    def __enter__(self) -> "Memory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMemory:
    """mem0's `AsyncMemory`: the same methods, awaited (each runs in a worker thread)."""

    def __init__(self, store: str | os.PathLike | None = None, **kwargs: Any) -> None:
        self.sync = kwargs.pop("sync", None) or Memory(store, **kwargs)


def _awaited(name: str) -> Any:
    target = getattr(Memory, name)

    @functools.wraps(target)
    async def method(self: AsyncMemory, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.sync, name), *args, **kwargs)

    return method


for _name in ("add", "update", "delete", "delete_all", "reset", "get", "get_all", "search", "history", "close"):
    setattr(AsyncMemory, _name, _awaited(_name))


def _scope(user_id: str | None, agent_id: str | None, run_id: str | None) -> dict[str, Any]:
    """mem0's entity ids as an Engram scope (a user is required: agent- or run-only
    memories live under the user "agent:<id>" or "run:<id>")."""
    if user_id is None and agent_id is None and run_id is None:
        raise InvalidInputError(_MISSING)
    if user_id is None:
        user_id = f"agent:{agent_id}" if agent_id is not None else f"run:{run_id}"
    return {"user_id": user_id, "agent_id": agent_id, "session_id": run_id}


def _entities(filters: Mapping[str, Any] | None, user_id: Any, agent_id: Any, run_id: Any) -> tuple:
    """mem0's filters (entity ids may sit in them, as in its current docs) as the
    entity ids and Engram filters on metadata; conditions are ANDed."""
    if filters is None:
        return user_id, agent_id, run_id, None
    if not isinstance(filters, Mapping):
        raise InvalidInputError(f"filters must be a dict, got {type(filters).__name__}")
    rest = dict(filters)
    if "AND" in rest:
        for part in rest.pop("AND"):
            rest.update(part)
    if "OR" in rest or "NOT" in rest:
        raise InvalidInputError("Engram's mem0 facade takes ANDed filters only (no OR / NOT)")
    entity = {key: rest.pop(key) for key in ENTITY_KEYS if key in rest}
    user_id = entity.get("user_id", user_id)
    agent_id = entity.get("agent_id", agent_id)
    run_id = entity.get("run_id", run_id)
    conditions: dict[str, Any] = {}
    for key, spec in rest.items():
        if isinstance(spec, Mapping):
            unknown = set(spec) - OPERATORS
            if unknown:
                raise InvalidInputError(f"unknown filter operator {sorted(unknown)} on {key!r}; use {sorted(OPERATORS)}")
        conditions[key if key in ("created_at", "kind", "role") else f"metadata.{key}"] = spec
    return user_id, agent_id, run_id, conditions or None


def _item(record: Any, *, event: str | None = None, score: float | None = None, user_id: str | None = None,
          agent_id: str | None = None) -> dict[str, Any]:
    """A memory as mem0 shows it (`memory` is the text), with Engram's provenance."""
    item: dict[str, Any] = {
        "id": record.id, "memory": record.text, "hash": hashlib.md5(record.text.encode()).hexdigest(),
        "metadata": dict(record.metadata), "created_at": record.created_at,
        "updated_at": getattr(record, "updated_at", None), "user_id": getattr(record, "user_id", user_id),
        "agent_id": getattr(record, "agent_id", agent_id), "run_id": record.session_id, "role": record.role,
        "kind": record.kind, "sources": list(record.sources),
    }
    if event is not None:
        item["event"] = event
    if score is not None:
        item["score"] = score
    return item
