"""The code's shape: dependencies point one way, modules stay small, leaves stay leaves.

Imports are read from the source with ``ast`` (at the top of a module and inside
functions alike), so a cycle hidden in a function body counts as one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "evalstream": ROOT / "client" / "evalstream",
    "evalstream_server": ROOT / "server" / "evalstream_server",
}
GENERATED = ROOT / "client" / "evalstream" / "v1"
MAX_LINES = 800


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's __init__), for every hand-written module."""
    found: dict[str, tuple[Path, bool]] = {}
    for root in PACKAGES.values():
        for path in sorted(root.rglob("*.py")):
            if GENERATED in path.parents:
                continue
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    if name == "evalstream.v1" or name.startswith("evalstream.v1."):
        return None  # the generated stubs: a leaf outside the hand-written graph
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str) -> Iterator[str]:
    """Our modules that ``name`` imports, anywhere in its body."""
    path, is_package = MODULES[name]
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = here[: len(here) - node.level + 1]
                base = ".".join([*prefix, base] if base else prefix)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != name:
                yield resolved


GRAPH = {name: sorted(set(_imports(name))) for name in MODULES}


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycles_finds_a_known_cycle() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_modules_import_each_other() -> None:
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_at_most_800_lines(name: str) -> None:
    path, _ = MODULES[name]
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)}: {lines} lines (at most {MAX_LINES})"


def test_errors_is_a_leaf() -> None:
    assert GRAPH["evalstream_server.errors"] == []


@pytest.mark.parametrize(
    "name", [n for n in sorted(MODULES) if n.startswith(("evalstream_server.metrics",
                                                         "evalstream_server.analysis"))]
)
def test_domain_code_never_imports_grpc_or_protobuf(name: str) -> None:
    path, _ = MODULES[name]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        for imported in names:
            top = imported.split(".")[0]
            assert top not in {"grpc", "google"}, f"{name} imports {imported}"
            assert not imported.startswith(("evalstream_server.api", "evalstream.v1")), (
                f"{name} imports {imported}"
            )
