"""The bus's modules import each other one way only, and other packages only by their public names."""

from __future__ import annotations

import ast
from pathlib import Path

import bus

BUS_DIR = Path(bus.__file__).parent
#: the modules the hot path runs through, and those they build on
CORE = (
    "_bus",
    "_dependencies",
    "_dispatch",
    "_errors",
    "_events",
    "_handler_actor",
    "_handlers",
    "_log",
    "_policy",
    "_registry",
    "_restarts",
    "_terminal",
)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever the import stands (also under TYPE_CHECKING and
    inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
    return found


def core_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in CORE:
        imports = imported_modules(BUS_DIR / f"{name}.py")
        graph[name] = {m.removeprefix("bus.") for m in imports if m.removeprefix("bus.") in CORE}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_core_bus_modules_import_each_other_without_a_cycle() -> None:
    assert find_cycle(core_graph()) is None


def test_the_cycle_finder_reports_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_bus_imports_actors_and_supervisor_only_through_their_public_names() -> None:
    private = {
        (str(path.relative_to(BUS_DIR)), module)
        for path in BUS_DIR.rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in {"actors", "supervisor"} and module not in {"actors", "supervisor"}
    }
    assert private == set()
