"""Execute every ``notebooks/*.ipynb`` with the small CI settings (``YOLOV7_NB_QUICK=1``) in a kernel
of this Python, and check a value each one computed.

Convention: a notebook's last output line starting with ``RESULT `` is a JSON object of its key
figures; ``CHECKS`` below asserts on it by the notebook's number prefix (a notebook without an entry
fails). Everything a notebook writes goes into the test's tmp dir
(``YOLOV7_NB_WORKDIR``); the generated shapes data is shared by the notebooks of a session
(``YOLOV7_CACHE``).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell; the quick settings need well under a minute per cell
# The quick settings (320 images of 128 px, 4 epochs, fp32 on a 2-core Xeon without bf16, torch 2.14)
# reach mAP@.5 0.0207 (0.020712739..., the same to every digit on two runs: the run is seeded); the
# validations after epochs 1, 2, 3 gave 0.0, 0.00009, 0.0017. The floor keeps a 2x margin for another
# CPU (bf16 where it has native bf16, other kernels) and still fails a quick-start that learned an epoch less.
QUICKSTART_MAP50_FLOOR = 0.01
# Notebook 02 (coarse_to_fine, 3 quick epochs) reaches a peak objectness of 1.0 on the busiest image
# in both heads; an untrained yolov7-tiny peaks at 0.019-0.021 (its P5 bias prior sigmoid(log(8 /
# 20^2)) = 0.0196; P3 0.0013). The floor is 5x the untrained peak.
TRAINED_OBJECTNESS_FLOOR = 0.1
PROBE = "import sys; print('KERNEL_PREFIX', sys.prefix); print('KERNEL_EXECUTABLE', sys.executable)"


def check_quickstart(result: dict, tmp: Path) -> None:
    for key in ("train_map50", "train_map", "eval_map50", "eval_map"):
        assert isinstance(result[key], float) and 0.0 <= result[key] <= 1.0, (key, result[key])
    assert result["train_map50"] >= QUICKSTART_MAP50_FLOOR, result  # it learned something
    # eval reads best.ckpt: its fitness is the best validation's, at least the last one's (the train result)
    fitness = {s: 0.1 * result[f"{s}_map50"] + 0.9 * result[f"{s}_map"] for s in ("train", "eval")}
    assert fitness["eval"] >= fitness["train"] - 1e-9, result
    predictions = Path(result["predictions"])
    assert predictions.is_file() and predictions.is_relative_to(tmp)
    records = json.loads(predictions.read_text())
    assert len(records) == result["images"] > 0
    assert len(list((predictions.parent / "images").glob("*.jpg"))) == result["images"]
    # the Python API (load_detector) on the same images: yolov7-predict's detections (its JSON rounds boxes to 0.01 px)
    api = {r["file"]: r for r in json.loads(Path(result["api_detections"]).read_text())}
    assert sorted(api) == sorted(r["file"] for r in records)
    for record in records:
        mine = api[record["file"]]
        assert mine["classes"] == record["classes"] and mine["names"] == record["names"]
        assert np.allclose(np.round(np.array(mine["boxes"]).reshape(-1, 4), 2), np.array(record["boxes"]).reshape(-1, 4),
                           atol=1e-4, rtol=0)
        assert np.allclose(np.round(np.array(mine["scores"]), 5), record["scores"], atol=1e-6, rtol=0)


def check_assignment(result: dict, tmp: Path) -> None:
    assert set(result["positives"]) == {"independent", "lead_guided", "coarse_to_fine"}
    for strategy, heads in result["positives"].items():
        assert heads["lead"] > 0 and heads["aux"] > 0, (strategy, heads)
    c2f = result["positives"]["coarse_to_fine"]
    assert c2f["aux"] >= c2f["lead"], c2f  # 5-cell coarse labels: at least as many positives as the fine ones
    lg = result["positives"]["lead_guided"]
    assert lg["aux"] == lg["lead"], lg  # the aux head gets the lead head's labels
    assert result["candidates"]["5-cell"] > result["candidates"]["3-cell"] > 0
    for head in ("lead", "aux"):  # both heads learned where the objects are (untrained: 0.02 at most)
        assert max(result["objectness_max"][head]) >= TRAINED_OBJECTNESS_FLOOR, result["objectness_max"]


def check_reparameterization(result: dict, tmp: Path) -> None:
    assert result["max_diff"] < 1e-3, result
    assert result["params_deploy"] < result["params_train"]
    steps = result["steps"]
    assert [s["params"] for s in steps] == sorted((s["params"] for s in steps), reverse=True)
    assert steps[-1]["params"] == result["params_deploy"] == result["params_to_deploy"]
    assert all(s["max_diff"] < 1e-3 for s in steps), steps


def check_report(result: dict, tmp: Path) -> None:
    assert result["jobs"] >= 1 and result["arms"] >= 1, result
    assert all(Path(f).is_file() for f in result["files"].values()), result["files"]
    # the report's rows are the jobs' own metrics.json, and each arm's mean is the mean of its jobs
    multirun = Path(result["multirun"])
    with open(result["files"]["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == result["jobs"]
    by_arm: dict[str, list[float]] = {}
    for row in rows:
        metrics = json.loads((multirun / row["job"] / "metrics.json").read_text())
        assert float(row["map"]) == pytest.approx(metrics["map"], abs=1e-9), row
        assert float(row["map50"]) == pytest.approx(metrics["map50"], abs=1e-9), row
        by_arm.setdefault(row["arm"], []).append(metrics["map"])
    assert result["map_by_arm"] == pytest.approx({a: sum(v) / len(v) for a, v in by_arm.items()}, abs=1e-9)


CHECKS = {"01": check_quickstart, "02": check_assignment, "03": check_reparameterization, "04": check_report}


@pytest.fixture(scope="session")
def shapes_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nb_cache")


def stream_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                parts.append(out["text"])
    return "".join(parts)


def line_value(text: str, prefix: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, f"no {prefix!r} line in the notebook output:\n{text[-2000:]}"
    return lines[-1][len(prefix):].strip()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path, shapes_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("YOLOV7_NB_QUICK", "1")
    monkeypatch.setenv("YOLOV7_NB_WORKDIR", str(tmp_path))
    monkeypatch.setenv("YOLOV7_CACHE", str(shapes_cache))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # ipykernel's debugger warns about frozen modules
    monkeypatch.delenv("YOLOV7_NB_CKPT", raising=False)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))  # which Python the kernel runs (not saved)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    seconds = time.perf_counter() - start
    text = stream_text(nb)
    # the kernel is this interpreter (the venv's), not some other python3 on the machine
    assert Path(line_value(text, "KERNEL_PREFIX")).resolve() == Path(sys.prefix).resolve()
    result = json.loads(line_value(text, "RESULT "))
    assert isinstance(result, dict) and result, result
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in result.values()), result
    assert path.name[:2] in CHECKS, f"{path.name}: add a check of its RESULT to CHECKS"
    CHECKS[path.name[:2]](result, tmp_path)
    print(f"{path.name}: {seconds:.1f} s")
