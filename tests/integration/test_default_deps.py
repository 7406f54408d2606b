"""The default ``yolov7-train`` ends with the deploy export (deploy file + ONNX, checked with ONNX
Runtime): everything that path imports must come with ``pip install yolov7-lightning`` (no extras).

Two checks. The default training command runs (and exports) in a fresh interpreter in which every
module of the ``dev`` and ``cluster`` extras, and of what they alone bring in, cannot be imported
(``sys.modules[name] = None``: an ``import`` raises ``ModuleNotFoundError`` and
``importlib.util.find_spec`` returns None, as for a package that is not installed), without the cost
of a fresh virtual environment. And the default export path, run in a fresh interpreter that records
every module it imports, imports third-party modules only from distributions in the closure of the
package's main dependencies (pyproject ``[project] dependencies`` and, recursively, what they require
without extras)."""

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
from yolov7_lightning.config import ExportConfig
from yolov7_lightning.export import export, source_from_model
from yolov7_lightning.models import build_model
from yolov7_lightning.training.callbacks import DeployExport
formats = ExportConfig().formats  # the default run's formats
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
    return dependency_closure(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


def dependency_closure(requirements: list[str]) -> set[str]:
    """The normalised names of ``requirements`` and, recursively, of what they require without extras."""
    todo, seen = [Requirement(d) for d in requirements], set()
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


BLOCKED_RUN = r"""
import importlib.metadata as md, json, re, runpy, sys
blocked, args = json.loads(sys.argv[1]), sys.argv[2:]
for name in [m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in blocked["modules"])]:
    del sys.modules[name]  # anything site or a .pth file imported already
for name in blocked["modules"]:
    sys.modules[name] = None  # import raises ModuleNotFoundError; importlib.util.find_spec gives None
discover = md.Distribution.discover.__func__  # and their metadata is gone (version(), RequirementCache)
md.Distribution.discover = classmethod(lambda cls, **kw: (
    d for d in discover(cls, **kw)
    if re.sub(r"[-_.]+", "-", d.metadata["Name"] or "").lower() not in blocked["distributions"]))
try:
    import pytest  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("pytest is still importable: the extras are not blocked")
try:
    md.version("optuna")
except md.PackageNotFoundError:
    pass
else:
    raise SystemExit("optuna is still installed for importlib.metadata: the extras are not hidden")
sys.argv = ["yolov7-train", *args]
runpy.run_module("yolov7_lightning.cli.train", run_name="__main__", alter_sys=True)
"""


def extras_only() -> dict[str, list[str]]:
    """Distributions that only the ``dev`` and ``cluster`` extras bring in, and their import names
    (in a namespace package shared with a main distribution, ``hydra_plugins``: their subpackages)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = dependency_closure([r for name in ("dev", "cluster") for r in project["optional-dependencies"][name]])
    only = extras - main_dependency_closure() - {"yolov7-lightning"}
    modules = set()
    for top, dists in metadata.packages_distributions().items():
        mine = {_name(d) for d in dists}
        if mine <= only:
            modules.add(top)
        elif mine & only:  # shared namespace: block the extras' own subpackages
            for dist in mine & only:
                for f in metadata.distribution(dist).files or []:
                    if len(f.parts) > 2 and f.parts[0] == top and not f.parts[1].endswith((".py", ".pyc")):
                        modules.add(f"{top}.{f.parts[1]}")
    return {"distributions": sorted(only), "modules": sorted(modules)}


def test_default_training_runs_and_exports_without_the_extras(tmp_path):
    from tests.integration.test_train import SMALL

    blocked = extras_only()
    assert {"pytest", "nbclient", "ipykernel", "submitit", "optuna", "sqlalchemy",
            "hydra_plugins.hydra_submitit_launcher", "hydra_plugins.hydra_optuna_sweeper"} <= set(blocked["modules"])
    assert {"pytest", "hydra-submitit-launcher", "optuna"} <= set(blocked["distributions"])
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", BLOCKED_RUN, json.dumps(blocked), f"hydra.run.dir={out}",
                           f"data.source.root={tmp_path / 'shapes'}", *SMALL, "schedule.epochs=1"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"outputs: {out}" in proc.stdout and "checkpoints/model.onnx" in proc.stdout
    report = json.loads((out / "checkpoints" / "export_report.json").read_text())  # the default export ran
    assert report["passed"] and {"deploy", "onnx"} <= set(report["outputs"]), report["outputs"]
    assert (out / "checkpoints" / "model.onnx").stat().st_size > 1e6 and (out / "metrics.json").is_file()
