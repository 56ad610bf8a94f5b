"""The structure of marathon_lib: no import circles (top-level or inside functions), so every module can be
read, tested and moved knowing only what lies below it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "marathon_lib"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every marathon_lib module `name` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "marathon_lib.textstack" in graph["marathon_lib.pruning.hook"]
    assert "marathon_lib.models.inputs" in graph["marathon_lib.models.decode"]


def test_a_planted_circle_is_found() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles() -> None:
    assert circles(import_graph()) == []


def test_lower_layers_do_not_import_upper_ones() -> None:
    """The text stack sits below models, pruning and kv; results/metrics/tasks never reach up to models."""
    graph = import_graph()
    low = {"marathon_lib.textstack": ("marathon_lib.models", "marathon_lib.pruning", "marathon_lib.kv"),
           "marathon_lib.metrics": ("marathon_lib.models", "marathon_lib.runner"),
           "marathon_lib.results": ("marathon_lib.models", "marathon_lib.runner", "marathon_lib.report"),
           # the results contract and the case builders: torch-free, below every runner and reporter
           "marathon_lib.schema": ("marathon_lib.",),
           "marathon_lib.scoring": ("marathon_lib.models", "marathon_lib.runner", "marathon_lib.report",
                                    "marathon_lib.merge"),
           "marathon_lib.merge": ("marathon_lib.models", "marathon_lib.runner")}
    for module, above in low.items():
        reached = {m for m in graph[module] if m.startswith(above)}
        assert not reached, (module, reached)
