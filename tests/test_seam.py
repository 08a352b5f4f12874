"""The store seam is narrow and complete (issue 10): `stores.base.Store` is made of small
protocols per aggregate; every backend implements every member; nothing outside stores/
calls a store method the protocol does not declare (no getattr probing)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import engramdb
from engramdb.stores import base
from engramdb.stores.postgres import PostgresStore
from engramdb.stores.sqlite import SQLiteStore

PACKAGE = Path(engramdb.__file__).parent
AGGREGATES = (base.Records, base.KeywordIndex, base.VectorIndex, base.Derivations, base.Jobs, base.Transfer,
              base.VitalSigns, base.Inspection, base.Notes, base.Graph)


def declared(protocol: type) -> set[str]:
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass in (object,) or not getattr(klass, "_is_protocol", False):
            continue
        names.update(n for n, v in vars(klass).items() if not n.startswith("_") and callable(v))
        names.update(getattr(klass, "__annotations__", {}))
    return names


STORE = declared(base.Store)


def test_the_store_is_the_sum_of_its_aggregates():
    assert STORE == set().union(*(declared(p) for p in AGGREGATES)) | {"compact", "close"}
    for protocol in AGGREGATES:  # small: a reader sees each in one glance
        assert len(declared(protocol)) <= 15, protocol.__name__


@pytest.mark.parametrize("backend", [SQLiteStore, PostgresStore])
def test_every_backend_implements_every_member(backend):
    for name in sorted(STORE - {"url"}):
        member = getattr(backend, name, None)
        assert callable(member), f"{backend.__name__} lacks {name}"
        ours = inspect.signature(getattr(base.Store, name))
        theirs = inspect.signature(member)
        assert list(ours.parameters) == list(theirs.parameters)[:len(ours.parameters)], (backend.__name__, name)


def store_calls(tree: ast.AST, names: set[str]) -> set[str]:
    """Methods called on what holds a store: `self._store.x()`, `anything.store.x()` and,
    in the modules that take stores as arguments, the arguments by those names."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            holder = node.func.value
            if isinstance(holder, ast.Attribute) and holder.attr in ("_store", "store"):
                out.add(node.func.attr)
            elif isinstance(holder, ast.Name) and holder.id in names:
                out.add(node.func.attr)
    return out


def test_nothing_outside_the_stores_calls_an_undeclared_method():
    undeclared = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "stores" and relative.name != "transfer.py":
            continue
        tree = ast.parse(path.read_text())
        names = {"source", "target"} if relative.name == "transfer.py" else set()
        calls = store_calls(tree, names) - STORE
        if calls:
            undeclared[str(relative)] = sorted(calls)
    assert undeclared == {}


def test_no_caller_probes_a_store_with_getattr():
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        assert "getattr(store" not in text and "getattr(self._store" not in text, path
