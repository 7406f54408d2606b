"""The references the assigner and loss are checked against share no code with them, and the
test namespace uses public torch APIs only."""

from __future__ import annotations

import ast
from pathlib import Path

import yolov7_lightning
from yolov7_lightning import testing

PACKAGE = Path(yolov7_lightning.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from . import x`` as ``.x``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names |= {base} if node.module else {f"{base}{alias.name}" for alias in node.names}
    return names


def test_references_import_nothing_from_the_package():
    for name in ("reference_ota.py", "reference_plain.py"):
        modules = imported_modules(Path(testing.__file__).parent / name)
        own = {m for m in modules if m.startswith("yolov7_lightning") or m.startswith(".")}
        assert own <= {".reference_ota"}, (name, own)  # reference_plain reuses the reference loss only


def test_testing_namespace_uses_public_torch_only_and_nothing_else_imports_it():
    for path in Path(testing.__file__).parent.glob("*.py"):
        private = {m for m in imported_modules(path) if any(part.startswith("_") and part != "__future__"
                                                             for part in m.split("."))}
        assert private == set(), (path.name, private)
    users = [p for p in PACKAGE.rglob("*.py") if "testing" not in p.relative_to(PACKAGE).parts
             and any(m.startswith(("yolov7_lightning.testing", "..testing", ".testing")) for m in imported_modules(p))]
    assert users == []
