"""LangGraph long-term memory on Engram: `EngramStore` is a LangGraph `BaseStore`.

    from engramdb import Memory
    from engramdb.integrations.langgraph import EngramStore

    store = EngramStore(Memory("sqlite:///./agent.db"))
    graph = builder.compile(store=store)        # nodes get it as `store`
    store.put(("memories", "alice"), "home", {"text": "Alice moved to Berlin"})
    store.search(("memories", "alice"), query="where does alice live?")

Every item is one Engram memory of one user scope (`user_id`, "langgraph" unless
given): its text (the value's `index` fields, or all its string leaves) is searchable by
keyword and by meaning; the value, namespace and key ride in its metadata. A second put
of a key is an Engram `update()` (the old value stays in `history()`); `delete()` is an
Engram erasure (the text leaves the store, its indexes and its history); `forget(prefix)`
erases a whole namespace. Needs `pip install 'engramdb[langgraph]'`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from . import every_record, require
from ..errors import InvalidInputError

_base = require("langgraph.store.base", "langgraph")
BaseStore = _base.BaseStore
GetOp, PutOp, SearchOp, ListNamespacesOp = _base.GetOp, _base.PutOp, _base.SearchOp, _base.ListNamespacesOp
Item, SearchItem = _base.Item, _base.SearchItem

META = "langgraph"  # metadata key holding {"namespace", "key", "value"}
PATH = "lg_path"  # metadata key: the JSON of [*namespace, key], the item's address
NS = "lg_ns"  # metadata keys lg_ns0, lg_ns1, ...: the namespace labels, for prefix filters
DEPTH = "lg_depth"
INDEXED = "lg_indexed"


class EngramStore(BaseStore):
    """A LangGraph `BaseStore` backed by an Engram `Memory` (sync `batch`, async `abatch`)."""

    supports_ttl = False
    __slots__ = ("memory", "user_id", "fields", "_writing")

    def __init__(self, memory: Any, *, user_id: str = "langgraph", fields: list[str] | None = None) -> None:
        self.memory = memory
        self.user_id = user_id
        self.fields = fields  # the value's fields to index (LangGraph paths); None: every string in it
        self._writing = threading.Lock()  # a put reads, then adds or updates: one at a time (no duplicate keys)

    # -- BaseStore -----------------------------------------------------------------------

    def batch(self, ops: Iterable[Any]) -> list[Any]:
        results: list[Any] = []
        for op in ops:
            _base.validate_op_namespace(op)
            if isinstance(op, GetOp):
                results.append(self._get(op.namespace, op.key))
            elif isinstance(op, PutOp):
                with self._writing:
                    results.append(self._put(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise InvalidInputError(f"EngramStore cannot run {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Any]) -> list[Any]:
        return await asyncio.to_thread(self.batch, list(ops))

    # -- Engram's own --------------------------------------------------------------------

    def memory_id(self, namespace: tuple[str, ...], key: str) -> str | None:
        """The Engram id of an item (for `Memory.history()`, `get()`, provenance)."""
        record = self._record(tuple(namespace), key)
        return None if record is None else record.id

    def history(self, namespace: tuple[str, ...], key: str) -> list[Any]:
        """Every version of an item, oldest first (engramdb.Version)."""
        rid = self.memory_id(namespace, key)
        return [] if rid is None else self.memory.history(rid, user_id=self.user_id)

    def forget(self, namespace_prefix: tuple[str, ...]) -> int:
        """Erase every item under a namespace prefix; returns how many."""
        records = list(self._records(tuple(namespace_prefix)))
        for record in records:
            self.memory.delete(record.id, user_id=self.user_id)
        return len(records)

    # -- the operations ------------------------------------------------------------------

    def _record(self, namespace: tuple[str, ...], key: str) -> Any:
        found = self.memory.list(user_id=self.user_id, filters={f"metadata.{PATH}": _path(namespace, key)}, limit=1)
        return found[0] if found else None

    def _records(self, prefix: tuple[str, ...]) -> Iterator[Any]:
        filters: dict[str, Any] = {f"metadata.{NS}{i}": label for i, label in enumerate(prefix)}
        filters[f"metadata.{DEPTH}"] = {"gte": len(prefix)}
        return every_record(self.memory, user_id=self.user_id, filters=filters)

    def _get(self, namespace: tuple[str, ...], key: str) -> Any:
        record = self._record(tuple(namespace), key)
        return None if record is None else _item(record, Item)

    def _put(self, op: Any) -> None:
        namespace = tuple(op.namespace)
        if not namespace:
            raise _base.InvalidNamespaceError("Namespace cannot be empty.")
        current = self._record(namespace, op.key)
        if op.value is None:
            if current is not None:
                self.memory.delete(current.id, user_id=self.user_id)
            return None
        if not isinstance(op.value, dict):
            raise InvalidInputError(f"a LangGraph store value must be a dict, got {type(op.value).__name__}")
        text = _text(op.value, self.fields if op.index is None else op.index, op.key)
        metadata = {META: {"namespace": list(namespace), "key": op.key, "value": op.value},
                    PATH: _path(namespace, op.key), DEPTH: len(namespace), INDEXED: op.index is not False,
                    **{f"{NS}{i}": label for i, label in enumerate(namespace)}}
        if current is None:
            self.memory.add({"role": "user", "content": text}, user_id=self.user_id, metadata=metadata)
        else:
            self.memory.update(current.id, text, user_id=self.user_id, metadata=metadata)
        return None

    def _search(self, op: Any) -> list[Any]:
        prefix = tuple(op.namespace_prefix)
        wanted = op.offset + op.limit
        if op.query:
            filters: dict[str, Any] = {f"metadata.{NS}{i}": label for i, label in enumerate(prefix)}
            filters[f"metadata.{INDEXED}"] = True
            depth = min(self.memory.config.max_limit, max(wanted * 4, 40))
            hits = self.memory.search(op.query, user_id=self.user_id, limit=depth, filters=filters,
                                      include_retired=False)
            found = [(self.memory.get(hit.id, user_id=self.user_id), hit.score) for hit in hits
                     if _matches(hit.metadata[META]["value"], op.filter)][:wanted]  # records: with updated_at
        else:
            found = [(record, None) for record in self._records(prefix)
                     if _matches(record.metadata[META]["value"], op.filter)]
        return [_item(record, SearchItem, score) for record, score in found[op.offset:wanted]]

    def _list_namespaces(self, op: Any) -> list[tuple[str, ...]]:
        seen: dict[tuple[str, ...], None] = {}
        for record in self._records(()):
            namespace = tuple(record.metadata[META]["namespace"])
            if all(_namespace_matches(namespace, c) for c in op.match_conditions or ()):
                seen[namespace[:op.max_depth] if op.max_depth is not None else namespace] = None
        return sorted(seen)[op.offset:op.offset + op.limit]


def _path(namespace: tuple[str, ...], key: str) -> str:
    return json.dumps([*namespace, key], ensure_ascii=False)


def _text(value: dict[str, Any], fields: Any, key: str) -> str:
    """What Engram indexes for an item: the given fields, else every string in the value
    (an item not to be indexed, or with no text, is kept under its key)."""
    if fields is False:
        return key
    if fields and fields != ["$"]:
        texts = [t for path in fields for t in _base.get_text_at_path(value, _base.tokenize_path(path))]
    else:
        texts = list(_strings(value))
    return "\n".join(t for t in texts if t.strip()) or key


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _item(record: Any, cls: Any, score: float | None = None) -> Any:
    data = record.metadata[META]
    created = datetime.fromisoformat(record.created_at.replace("Z", "+00:00"))
    updated = datetime.fromisoformat(record.updated_at.replace("Z", "+00:00"))
    if cls is SearchItem:
        return SearchItem(namespace=tuple(data["namespace"]), key=data["key"], value=data["value"],
                          created_at=created, updated_at=updated, score=score)
    return Item(value=data["value"], key=data["key"], namespace=tuple(data["namespace"]), created_at=created,
                updated_at=updated)


_COMPARE = {
    "$eq": lambda a, b: a == b, "$ne": lambda a, b: a != b, "$gt": lambda a, b: a is not None and a > b,
    "$gte": lambda a, b: a is not None and a >= b, "$lt": lambda a, b: a is not None and a < b,
    "$lte": lambda a, b: a is not None and a <= b,
}


def _matches(value: dict[str, Any], filter: dict[str, Any] | None) -> bool:
    """LangGraph's filter: exact matches, or {"$gt": ...}-style comparisons, on the value."""
    for field, spec in (filter or {}).items():
        actual = value.get(field)
        if isinstance(spec, dict) and spec and all(k.startswith("$") for k in spec):
            for op, expected in spec.items():
                if op not in _COMPARE:
                    raise InvalidInputError(f"unknown filter operator {op!r}; use one of {sorted(_COMPARE)}")
                try:
                    if not _COMPARE[op](actual, expected):
                        return False
                except TypeError:
                    return False
        elif actual != spec:
            return False
    return True


def _namespace_matches(namespace: tuple[str, ...], condition: Any) -> bool:
    path = tuple(condition.path)
    if len(path) > len(namespace):
        return False
    part = namespace[:len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path):]
    return all(p == "*" or p == n for p, n in zip(path, part))
