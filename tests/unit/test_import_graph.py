"""No import cycle between the package's modules, counting the imports made inside functions (a
function-level import that closes a cycle only hides it until the function runs).

Every module of ``src/yolov7_lightning`` is parsed with ``ast``; each ``import`` and ``from ... import``
(at module level, in a function or a class, relative or absolute) that names a module of the package is
an edge. Imports under ``if TYPE_CHECKING:`` never run and are left out."""

from __future__ import annotations

import ast
from pathlib import Path

import yolov7_lightning

PACKAGE = Path(yolov7_lightning.__file__).resolve().parent
NAME = "yolov7_lightning"


def modules(root: Path = PACKAGE, name: str = NAME) -> dict[str, Path]:
    """``{dotted module name: file}``; a package is its ``__init__.py``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((name, *parts))] = path
    return found


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST):
    """Every Import / ImportFrom node, outside ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if _type_checking(node):
            yield from (n for child in node.orelse for n in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


def imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules ``module`` (at ``path``) imports anywhere in its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from pkg import name``: the submodule ``pkg.name`` when there is one, else ``pkg`` itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:  # ``import a.b.c`` of a name inside a module: that module
                target = target.rpartition(".")[0]
            if target and target != module:
                out.add(target)
    return out


def graph(known: dict[str, Path]) -> dict[str, set[str]]:
    return {m: imported(m, p, known) for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
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
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_cycle_in(sorted(c)[0], c, edges) for c in components]


def _cycle_in(start: str, component: set[str], edges: dict[str, set[str]]) -> list[str]:
    """The shortest path from ``start`` back to itself inside ``component`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component of >1 has one


def test_the_graph_sees_imports_inside_functions(tmp_path):
    """The parser finds a cycle closed by an import inside a function, a relative ``from . import``
    and an absolute import; ``if TYPE_CHECKING:`` imports are no edge."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub.b import thing\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def thing():\n    from .. import c\n    return c\n")
    (pkg / "c.py").write_text("import pkg.a\nfrom typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from .sub import d\n")
    (pkg / "sub" / "d.py").write_text("from ..c import x\n")
    known = modules(pkg, "pkg")
    edges = graph(known)
    assert edges["pkg.a"] == {"pkg.sub.b"} and edges["pkg.sub.b"] == {"pkg.c"}
    assert edges["pkg.c"] == {"pkg.a"} and edges["pkg.sub.d"] == {"pkg.c"}
    assert cycles(edges) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]


def test_no_import_cycle_in_the_package():
    known = modules()
    assert len(known) > 50  # the whole package was found
    found = cycles(graph(known))
    assert not found, "import cycle(s), imports inside functions included:\n" + "\n".join(
        " -> ".join(c) for c in found)
