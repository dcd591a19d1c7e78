"""The house stays clean: no import cycles and no import against the declared layer order.

Every import statement under ``graphssl/`` counts, function-level ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "graphssl"

# Lowest first. A module may import modules of its own package or of a lower layer; packages of
# one layer do not import each other (the three domains know nothing of one another).
LAYERS: list[set[str]] = [
    {"core"},
    {"data", "nn", "transforms"},
    {"molecule", "atomistic", "brep"},
    {"objectives"},
    {"tasks", "zoo"},
    {"engine"},
    {"bench"},
    {"sklearn", "lightning"},
    {"cli", "__init__"},
]


def _package_of(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _layer(module: str) -> int:
    package = _package_of(module)
    for level, packages in enumerate(LAYERS):
        if package in packages:
            return level
    raise AssertionError(f"module {module} belongs to package '{package}', which no layer declares")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> the graphssl modules it imports (any statement, anywhere in the file)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = module.split(".") if is_package else module.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                if target.split(".")[0] != "graphssl":
                    continue
                resolved = _resolve(target, modules)
                # a package's own __init__ is not a dependency of the modules inside it
                if resolved and resolved != module and not module.startswith(resolved + "."):
                    graph[module].add(resolved)
                    break
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        for target in targets:
            same_package = _package_of(module) == _package_of(target)
            if same_package:
                continue
            if _layer(target) >= _layer(module):
                bad.append(f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})")
    return sorted(bad)


def test_every_package_has_a_layer():
    for module in _modules():
        _layer(module)


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_imports_follow_the_layer_order():
    bad = upward_imports(import_graph())
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_the_checker_sees_cycles_and_upward_imports():
    graph = {"graphssl.core.a": {"graphssl.data.b"}, "graphssl.data.b": {"graphssl.core.a"}}
    assert find_cycles(graph) == [["graphssl.core.a", "graphssl.data.b"]]
    assert upward_imports(graph) == ["graphssl.core.a (layer 0) imports graphssl.data.b (layer 1)"]
    assert upward_imports({"graphssl.molecule.x": {"graphssl.brep.y"}, "graphssl.brep.y": set()})
    with pytest.raises(AssertionError, match="no layer declares"):
        _layer("graphssl.nowhere.x")
