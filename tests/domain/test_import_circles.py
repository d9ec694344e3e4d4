"""The domain core and the register's sale modules import each other in one direction only: a module-level
import circle (cart <-> pricing was one) fails here with the circle named."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_imports(path: Path, package: str) -> set[str]:
    """Project modules imported at module level (imports under ``if TYPE_CHECKING:`` and inside functions
    do not run at import time and cannot make a circle)."""
    out: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m.startswith(package)}


def _graph(package: str) -> dict[str, set[str]]:
    folder = ROOT / package.replace(".", "/")
    modules = {
        f"{package}.{p.relative_to(folder).with_suffix('').as_posix().replace('/', '.')}": p
        for p in folder.rglob("*.py")
        if p.name != "__init__.py"
    }
    return {
        m: {d for d in _module_imports(p, package) if d in modules and d != m} for m, p in modules.items()
    }


def _circle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return [*path[path.index(d) :], d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[m] = 2
        return []

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return []


def test_the_domain_core_has_no_import_circle() -> None:
    graph = _graph("hub.domain")
    assert "hub.domain.discounts" in graph["hub.domain.cart"]  # cart and pricing both take discounts
    assert "hub.domain.pricing" not in graph["hub.domain.cart"]
    assert _circle(graph) == []


def test_the_sale_modules_have_no_import_circle() -> None:
    assert _circle(_graph("hub.sale")) == []


def test_the_walk_finds_a_circle() -> None:
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
