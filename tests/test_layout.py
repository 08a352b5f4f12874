"""The package's layout, read from its source (ast, nothing imported): no import cycles,
no module importing a backend it does not own, and `import engramdb` light.

What counts as an import: every `import` / `from … import` of an engramdb module, at
module level (class bodies, `try` and `if` blocks included) and inside functions (a lazy
import, as optional backends use). Lazy imports count for cycles too: one that closes a
loop with module-level imports still makes two modules depend on each other, and which
finishes first then depends on who imported whom. Imports under `if TYPE_CHECKING:` never
run and do not count. `from pkg import name` is an edge to the module `pkg.name` when
there is one, else to `pkg`; a module's own parent packages, which Python runs before it,
are no edge of its (they would make every package a cycle with its children).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "engramdb"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line}{', in a function' if self.lazy else ''})"


def modules(root: Path, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package's __init__)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> list[Edge]:
    known = modules(root, package)
    edges: list[Edge] = []
    for name, (path, is_package) in known.items():
        here = name if is_package else name.rpartition(".")[0]

        def add(target: str, line: int, lazy: bool, name: str = name) -> None:
            if target.split(".")[0] == package and target != name:
                edges.append(Edge(name, target, line, lazy))

        def visit(node: ast.AST, lazy: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _type_checking(child):
                    for other in child.orelse:
                        visit_node(other, lazy)
                else:
                    visit_node(child, lazy)

        def visit_node(node: ast.AST, lazy: bool, here: str = here) -> None:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, node.lineno, lazy)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = here.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base, node.lineno, lazy)
            visit(node, lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    unknown = sorted({str(e) for e in edges if e.target not in known})
    assert not unknown, f"imports of engramdb modules that do not exist: {unknown}"
    return list(dict.fromkeys(edges))  # one edge per statement, however many names it imports


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def explain(edges: list[Edge], components: list[list[str]]) -> str:
    return "\n".join(
        "cycle: " + "; ".join(str(e) for e in edges if e.source in group and e.target in group)
        for group in components
    )


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_graph()


# -- the reader itself ----------------------------------------------------------------


def test_the_reader_sees_lazy_cycles_and_skips_type_checking(tmp_path):
    """On a package made for it: a cycle closed by an import inside a function is found,
    one through `if TYPE_CHECKING:` is not, and `from . import mod` is an edge to mod."""
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .. import b\n")
    (pkg / "a.py").write_text("from .b import helper\n")
    (pkg / "b.py").write_text("def helper():\n    from . import a\n    return a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import X\n")
    (pkg / "d.py").write_text("import demo.c\n")
    found = import_graph(tmp_path, "demo")
    assert {(e.source, e.target, e.lazy) for e in found} == {
        ("demo.sub", "demo.b", False), ("demo.a", "demo.b", False), ("demo.b", "demo.a", True),
        ("demo.d", "demo.c", False),
    }
    assert cycles(found) == [["demo.a", "demo.b"]]
    assert cycles([e for e in found if not e.lazy]) == []


def test_the_reader_reads_the_package(edges):
    pairs = {(e.source, e.target) for e in edges}
    assert ("engramdb.stores.sqlite", "engramdb.stores.migrations") in pairs
    assert ("engramdb.server.keys", "engramdb.server.keys.postgres") in pairs  # lazy, in open_key_store
    assert ("engramdb.cli", "engramdb.server.cli") in pairs
    assert len(modules(ROOT)) > 50


# -- the rules ------------------------------------------------------------------------


def test_no_import_cycles(edges):
    found = cycles(edges)
    assert not found, explain(edges, found)


def backend(module: str) -> str | None:
    """The store backend a module belongs to: its path under stores/ (or under the key
    stores) starts with sqlite or postgres; vectors.py is the SQLite store's mirror."""
    if module == "engramdb.stores.vectors":
        return "sqlite"
    for prefix in ("engramdb.stores.", "engramdb.server.keys."):
        if module.startswith(prefix):
            head = module[len(prefix):].split(".")[0]
            for name in ("sqlite", "postgres"):
                if head.startswith(name):
                    return name
    return None


def test_backend_families_are_what_the_rule_means():
    assert backend("engramdb.stores.sqlite") == backend("engramdb.stores.sqlite_schema") == "sqlite"
    assert backend("engramdb.stores.postgres") == backend("engramdb.stores.postgres_connection") == "postgres"
    assert backend("engramdb.server.keys.postgres") == "postgres"
    assert backend("engramdb.stores.migrations") is None and backend("engramdb.stores") is None


def test_no_module_imports_a_backend_it_does_not_own(edges):
    """A backend's modules import no other backend's; shared modules (the store protocol,
    filters, the migration runner, keyword words, transfer…) import no backend at all,
    except the package's opener (stores/__init__, server/keys/__init__), and that only
    inside the function that opens the backend asked for."""
    openers = {"engramdb.stores", "engramdb.server.keys"}
    wrong = []
    for edge in edges:
        target, source = backend(edge.target), backend(edge.source)
        if target is None or target == source:
            continue
        if edge.source in openers and edge.lazy:
            continue
        wrong.append(str(edge))
    assert not wrong, "\n".join(wrong)


def test_server_reaches_stores_through_engramdb_stores(edges):
    """The server's modules open stores through `engramdb.stores` (open_store and its
    names); only the key stores, a store of their own, use the migration runner and
    their backend's connection module."""
    wrong = [
        str(e) for e in edges
        if e.source.startswith("engramdb.server") and e.target.startswith("engramdb.stores.")
        and not (e.source.startswith("engramdb.server.keys.") and
                 (e.target == "engramdb.stores.migrations" or backend(e.target) == backend(e.source)))
    ]
    assert not wrong, "\n".join(wrong)


HEAVY = ("numpy", "psycopg", "psycopg_pool", "pgvector", "fastapi", "starlette", "uvicorn", "mcp", "pydantic",
         "spacy", "usearch", "onnxruntime", "tokenizers", "httpx")


def loaded_by(statement: str) -> tuple[list[str], list[str]]:
    """The heavy top-level packages, and the engramdb modules, that `statement` loads in a
    fresh interpreter importing this checkout."""
    code = (f"{statement}\nimport sys\n"
            f"print(sorted(m for m in sys.modules if m in {HEAVY!r}))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'engramdb'))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=ROOT).stdout.splitlines()
    return ast.literal_eval(out[0]), ast.literal_eval(out[1])


def test_import_engramdb_stays_light():
    heavy, ours = loaded_by("import engramdb")
    assert heavy == []
    assert ours == ["engramdb", "engramdb.config", "engramdb.errors", "engramdb.types"]


def test_the_cli_loads_no_backend_until_a_command_runs():
    """`engram --help` imports the command groups, not the stores, the web stack or spaCy."""
    heavy, ours = loaded_by("import engramdb.cli")
    assert heavy == []
    assert not [m for m in ours if m.startswith(("engramdb.stores", "engramdb.memory", "engramdb.server.rest"))]


def test_the_key_stores_load_no_store_backend():
    """API keys need neither a store nor pgvector: the PostgreSQL key store loads psycopg
    and the stores' shared modules only; the SQLite one, not even psycopg."""
    heavy, ours = loaded_by("import engramdb.server.keys.postgres")
    assert "psycopg" in heavy and "pgvector" not in heavy
    assert not [m for m in ours if backend(m) is not None and not m.startswith("engramdb.server.keys.")
                and m != "engramdb.stores.postgres_connection"]
    heavy, ours = loaded_by("import engramdb.server.keys.sqlite")
    assert not {"psycopg", "pgvector", "fastapi", "spacy"} & set(heavy)
    assert not [m for m in ours if backend(m) is not None and m != "engramdb.server.keys.sqlite"]
