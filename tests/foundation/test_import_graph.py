"""The import graph of hub/, actors/ and drivers/: no circles, project imports at module top, and the live
session importable without trio or LMDB (issue 13, items 1 and 6; review points 2 and 11)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hub", "actors", "drivers")

# function-local project imports that stay, each with its reason (keep this list short)
LOCAL_ALLOWED: dict[tuple[str, str], str] = {
    ("hub.cli", "hub.wiring"): "every feature loads only for the subcommands that run a hub, not for backup",
    ("hub.cli", "hub.hq.demo"): "the HQ of the chain demo loads only for `storehub demo --chain`",
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    local: bool  # inside a function: runs when called, not when the module is imported


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name lands in (``hub.sale.cart.scan`` -> ``hub.sale.cart``)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Edge]:
    """The project modules ``module`` imports (not under ``if TYPE_CHECKING:``). Importing ``a.b.c`` runs
    ``a`` and ``a.b`` first, so those count too, except the module's own packages (initialised before it
    anyway): ``from a import X`` inside ``a.m`` depends on ``a``'s own code only when X is not a module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}

    def walk(node: ast.AST, local: bool) -> Iterator[Edge]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from (e for n in child.orelse for e in walk_one(n, local))
                continue
            yield from walk_one(child, local)

    def walk_one(child: ast.AST, local: bool) -> Iterator[Edge]:
        if isinstance(child, ast.Import | ast.ImportFrom):
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            else:
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*up, base] if base else up)
                subs = [f"{base}.{a.name}" for a in child.names]
                names = [n for n in subs if n in modules]
                if len(names) < len(subs):  # a name defined in ``base`` itself
                    names.append(base)
            targets: set[str] = set()
            for name in names:
                direct = _resolve(name, modules)
                if direct is None:
                    continue
                targets.add(direct)
                parent = direct.rpartition(".")[0]
                while parent and not local:  # importing a.b.c runs a and a.b first
                    if parent in modules and parent not in own:
                        targets.add(parent)
                    parent = parent.rpartition(".")[0]
            for target in sorted(targets - {module}):
                yield Edge(module, target, child.lineno, local)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from walk(child, True)
        else:
            yield from walk(child, local)

    yield from walk(ast.parse(path.read_text(), str(path)), False)


def module_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for m, p in modules.items():
        for e in imports_of(m, p, modules):
            if not e.local:
                graph[m].add(e.target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each circle once, as a path ``a -> b -> ... -> a`` through one strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan; the graph is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_path_through(graph, component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _path_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    seen = {start: [start]}
    todo = [start]
    while todo:  # breadth-first back to start within the component: the shortest circle through it
        v = todo.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return [*seen[v], start]
            if w not in seen:
                seen[w] = [*seen[v], w]
                todo.append(w)
    return sorted(component)


def test_no_import_circles() -> None:
    found = cycles(module_graph(project_modules()))
    assert found == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_project_imports_are_at_module_top() -> None:
    modules = project_modules()
    local = {
        (e.source, e.target)
        for m, p in modules.items()
        for e in imports_of(m, p, modules)
        if e.local and (e.source, e.target) not in LOCAL_ALLOWED
    }
    assert local == set(), "function-local project imports:\n" + "\n".join(
        f"{s} imports {t}" for s, t in sorted(local)
    )


def test_the_walker_finds_a_circle_and_a_local_import(tmp_path: Path) -> None:
    (tmp_path / "hub" / "pkg").mkdir(parents=True)
    for pkg in PACKAGES[1:]:
        (tmp_path / pkg).mkdir()
    (tmp_path / "hub" / "__init__.py").write_text("")
    # a package that imports its submodule, which takes a name from the package's own code
    (tmp_path / "hub" / "pkg" / "__init__.py").write_text("X = 1\nfrom hub.pkg import a\n")
    (tmp_path / "hub" / "pkg" / "a.py").write_text("from hub.pkg import X\n")
    (tmp_path / "hub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hub.pkg import a\n"
        "def f():\n    from hub.pkg import a\n"
    )
    modules = project_modules(tmp_path)
    assert cycles(module_graph(modules)) == [["hub.pkg", "hub.pkg.a", "hub.pkg"]]
    local = [e for m, p in modules.items() for e in imports_of(m, p, modules) if e.local]
    assert [(e.source, e.target, e.line) for e in local] == [("hub.b", "hub.pkg.a", 5)]
    # a facade package re-exporting its submodules is no circle; a relative import one level up is seen
    (tmp_path / "hub" / "pkg" / "__init__.py").write_text("from hub.pkg.a import Y\n")
    (tmp_path / "hub" / "pkg" / "a.py").write_text("from hub.pkg.c import Y\n")
    (tmp_path / "hub" / "pkg" / "c.py").write_text("Y = 1\n")
    assert cycles(module_graph(project_modules(tmp_path))) == []
    (tmp_path / "hub" / "b.py").write_text("import hub.pkg.c\n")
    (tmp_path / "hub" / "pkg" / "c.py").write_text("from ..b import x\n")
    assert cycles(module_graph(project_modules(tmp_path))) == [["hub.b", "hub.pkg.c", "hub.b"]]
    (tmp_path / "hub" / "b.py").write_text("import hub.pkg\n")  # runs the package: pkg -> a -> c -> b
    assert cycles(module_graph(project_modules(tmp_path))) == [
        ["hub.b", "hub.pkg", "hub.pkg.a", "hub.pkg.c", "hub.b"]
    ]


def test_the_live_session_imports_without_trio_or_lmdb() -> None:
    """Review point 2: the sans-I/O session loads no I/O library (checked in a fresh interpreter)."""
    probe = "import sys, hub.live.session; print(sorted({'trio', 'lmdb', 'httpx'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
