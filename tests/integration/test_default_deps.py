"""The default ``yolov7-train`` ends with the deploy export (deploy file + ONNX, checked with ONNX
Runtime): everything that path imports must come with ``pip install yolov7-lightning`` (no extras).

The default export path runs in a fresh interpreter that records every module it imports; each
third-party module must belong to a distribution in the closure of the package's main dependencies
(pyproject ``[project] dependencies`` and, recursively, what they require without extras)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata

import tomllib
from packaging.requirements import Requirement

from tests.helpers import REPO

SCRIPT = r"""
import json, sys
before = set(sys.modules)
import dataclasses
from omegaconf import OmegaConf
from yolov7_lightning.export import export, source_from_model
from yolov7_lightning.models import build_model
from yolov7_lightning.training.callbacks import DeployExport
formats = OmegaConf.load("conf/train.yaml").export.formats  # the default run's formats
cb = DeployExport(formats=list(formats))
model = build_model("yolov7-tiny", num_classes=2).eval()
report = export(source_from_model(model, image_size=64), sys.argv[1], dataclasses.replace(cb.options, image_size=64),
                raise_on_fail=False)
assert {"deploy", "onnx"} <= set(report["outputs"]), report["outputs"]
assert "onnx_vs_pytorch" in report["checks"], report["checks"]
print(json.dumps(sorted({m.split(".")[0] for m in set(sys.modules) - before})))
"""


# imported on this path only because they are installed here (guarded optional imports of dependencies)
OPTIONAL = {"attr": "omegaconf supports attrs classes when attrs is installed",
            "rich": "lightning's rich progress bar, used when rich is installed"}


def _name(req: str) -> str:
    return re.sub(r"[-_.]+", "-", req).lower()


def main_dependency_closure() -> set[str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    todo, seen = [Requirement(d) for d in deps], set()
    while todo:
        req = todo.pop()
        name = _name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            todo += [Requirement(r) for r in metadata.requires(req.name) or []]
        except metadata.PackageNotFoundError:
            pass
    return seen


def test_default_export_needs_only_main_dependencies(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = json.loads(proc.stdout.strip().splitlines()[-1])
    owners = metadata.packages_distributions()
    third_party = {m: owners[m] for m in imported if m in owners and m not in sys.stdlib_module_names
                   and m != "yolov7_lightning" and m not in OPTIONAL}
    assert {"onnx", "onnxruntime", "torch"} <= set(third_party)
    closure = main_dependency_closure()
    missing = {m: d for m, d in third_party.items() if not any(_name(x) in closure for x in d)}
    assert missing == {}, f"imported by the default export but not a (transitive) main dependency: {missing}"
