"""``yolov7-info`` as a user runs it: a real Hydra app in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import OFFICIAL


def run_info(*overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.info", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("variant", ["yolov7", "yolov7-e6e"])
def test_json_matches_official_numbers(variant):
    proc = run_info(f"model={variant}", "format=json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)  # exactly one JSON object on stdout
    params_train, params_deploy, gf_train, gf_deploy, size = OFFICIAL[variant]
    assert (info["params_train"], info["params_deploy"], info["image_size"]) == (params_train, params_deploy, size)
    assert info["gflops_train"] == pytest.approx(gf_train, rel=0.005)
    assert info["gflops_deploy"] == pytest.approx(gf_deploy, rel=0.005)


def test_overrides_reach_the_model():
    proc = run_info("model=yolov7-tiny", "model.num_classes=3", "model.aux_head=true", "scaling=compound",
                    "image_size=320", "format=json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert (info["num_classes"], info["aux_head"], info["image_size"]) == (3, True, 320)
    assert info["scaling"]["mode"] == "compound" and info["variant"] == "yolov7-tiny-c1.5"


@pytest.mark.parametrize("overrides, message", [
    (["model=yolov8"], "Available options in 'model'"),
    (["scaling=tall"], "Available options in 'scaling'"),
    (["model.variant=yolov8"], "valid: yolov7-tiny, yolov7"),
    (["model.aux_haed=true"], "Key 'aux_haed' not in 'ModelConfig'"),
    (["model.num_classes=0"], "num_classes must be >= 1"),
])
def test_bad_input_is_a_clear_error(overrides, message):
    proc = run_info(*overrides)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
