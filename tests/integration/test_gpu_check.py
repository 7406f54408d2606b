"""``benchmarks/gpu_check.py --device cpu``: every step of the GPU check runs at tiny sizes on the CPU, so the
script a GPU run depends on cannot rot. One real run (about a minute on an idle 2-core machine), shared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"
STEPS = ["cuda_tests", "main_job", "ddp", "throughput", "inference"]

pytestmark = pytest.mark.slow


def gpu_check(tmp_path, *args, env=None):
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    return proc, (json.loads(out.read_text()) if out.is_file() else None)


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    return gpu_check(tmp_path_factory.mktemp("gpu_check"))


def test_every_step_runs_and_the_table_is_printed(check):
    proc, report = check
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["schema"] == 1 and report["mode"] == "cpu" and report["total_s"] > 0
    assert list(report["steps"]) == STEPS
    for name, step in report["steps"].items():
        assert step["status"] == "ok" and step["error"] is None and step["seconds"] > 0, (name, step)
    assert "| step | status | seconds | figures |" in proc.stdout
    for name in STEPS:
        assert f"| {name} | ok |" in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("written: ") and last.endswith("check.json and check.md")
    table = (Path(last.split()[1]).with_suffix(".md")).read_text()
    assert table.startswith("## gpu_check: ") and table in proc.stdout


def test_tests_and_training_figures(check):
    _, report = check
    tests = report["steps"]["cuda_tests"]["result"]
    assert tests["passed"] >= 1 and tests["failures"] == tests["errors"] == 0 and "-m cuda" in tests["command"]
    for name in ("main_job", "ddp"):
        job = report["steps"][name]["result"]
        assert job["returncode"] == 0 and job["epochs"] == 1 and job["wall_s"] > job["train_s"] > 0
        assert 0 <= job["map"] <= job["map50"] <= 1 and job["nonfinite_skipped"] == 0
    main = report["steps"]["main_job"]["result"]
    assert main["command"].startswith("yolov7-train ") and "trainer=cpu" in main["command"]
    assert "trainer=ddp_cpu trainer.devices=1" in report["steps"]["ddp"]["result"]["command"]
    ref = main["cpu_reference"]
    assert ref["source"].startswith("docs/benchmarks.md") and 0 < ref["map"] < ref["map50"] < 1 and ref["wall_s"] > 0
    from tests.helpers import REPO  # the constant is the default row of docs/benchmarks.md's main-job table

    row = next(line for line in (REPO / "docs" / "benchmarks.md").read_text().splitlines()
               if line.startswith("| fp32, channels-last (default) | `yolov7-train` |"))
    minutes, seconds = divmod(ref["wall_s"], 60)
    assert f"{minutes} min {seconds} s" in row and f"**{ref['map50']:.3f}**" in row and f"**{ref['map']:.3f}**" in row


def test_throughput_rows(check):
    _, report = check
    result = report["steps"]["throughput"]["result"]
    assert [p["precision"] for p in result["peaks"]][0] == "fp32"
    assert all(p["peak_gflops"] == max(p["gemm_gflops"], p["conv_gflops"]) > 0 for p in result["peaks"])
    rows = result["rows"]
    precisions = [p["precision"] for p in result["peaks"]]
    assert [(r["precision"], r["channels_last"], r["compile"]) for r in rows] == \
        [(p, cl, False) for p in precisions for cl in (False, True)] + [(precisions[-1], True, "eager")]
    for r in rows:
        assert r["variant"] == "yolov7-tiny" and r["size"] == 64 and r["batch"] == 2
        # the JSON's figures are rounded (images/s to 0.01, the fraction to 0.001)
        assert r["s_per_step"] > 0 and r["images_per_s"] == pytest.approx(2 / r["s_per_step"], rel=0.01, abs=0.01)
        assert r["fraction_of_peak"] == pytest.approx(
            3 * r["forward_gflops_per_image"] * r["images_per_s"] / r["peak_gflops"], rel=0.02, abs=1e-3)
        assert 0 < r["loss_share"] < 1 and r["forward_gflops_per_image"] > 0
        assert r["peak_mem_mb"] is None and r["resident_mb"] > 6.2e6 * 4 * 2 / 2**20  # weights + momentum, fp32
    assert rows[0]["speedup_vs_fp32"] == 1.0
    (data,) = result["data"]
    assert data["num_workers"] >= 0 and 0 <= data["data_wait_share"] < 1 and data["step_s_with_data"] > 0


def test_inference_rows_and_targets(check):
    _, report = check
    rows = report["steps"]["inference"]["result"]["rows"]
    assert [r["batch"] for r in rows] == [1, 2]
    for r in rows:
        assert r["torch_ms"] > 0 and r["torch_dtype"] == "float32"
        assert r["onnxruntime"] == "CPUExecutionProvider" and r["onnxruntime_ms"] > 0
    targets = {t["target"].split(" (")[0]: t for t in report["targets"]}
    assert set(targets) == {"AMP training >= 2.0x fp32", "assigner + loss < 10% of a step",
                            "fraction of peak >= 30%", "data wait < 5% of a step"}
    assert targets["assigner + loss < 10% of a step"]["met"] == (targets["assigner + loss < 10% of a step"]["value"] < 0.1)


def test_a_failed_step_is_recorded_and_the_next_runs(tmp_path):
    env = {**os.environ, "YOLOV7_CKPT_PATH": str(tmp_path / "missing.ckpt")}  # the training jobs fail at start
    proc, report = gpu_check(tmp_path, "--skip", "cuda_tests", "throughput", env=env)
    assert proc.returncode == 1
    steps = report["steps"]
    assert steps["cuda_tests"]["status"] == steps["throughput"]["status"] == "skipped"
    for name in ("main_job", "ddp"):
        assert steps[name]["status"] == "failed" and "missing.ckpt" in steps[name]["error"]
        assert steps[name]["result"]["returncode"] == 1
    assert steps["inference"]["status"] == "ok"
    assert "| main_job | failed |" in proc.stdout
