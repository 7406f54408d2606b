"""Export: deploy checkpoint, ONNX with/without end-to-end NMS, self-check report, CLI, callback.

Models get randomised BN statistics / implicit values (so fusion folds something) and a spread of
head biases (so scores are far from ties and NMS decisions are well defined). Inputs are small.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.helpers import REPO, randomise_statistics
from tests.unit.models.test_official_weights import random_official, save_official
from yolov7_lightning.eval import non_max_suppression
from yolov7_lightning.eval.onnx_predict import OnnxDetector
from yolov7_lightning.export import ExportCheckError, ExportOptions, Tolerances, export, load_source, source_from_model
from yolov7_lightning.models import build_model

pytest.importorskip("onnxruntime")

CONF = 0.01  # low enough that untrained models give detections


def spread_head(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in model.detect.m:  # objectness and class biases only (boxes keep their usual range)
            bias = conv.bias.view(model.detect.na, -1)
            bias[:, 4:] += torch.randn(bias[:, 4:].shape, generator=g)
    return model


def make_model(variant: str, nc: int, seed: int = 0, **kwargs):
    torch.manual_seed(seed)  # the initial weights
    return spread_head(randomise_statistics(build_model(variant, num_classes=nc, **kwargs), seed=seed), seed).eval()


def images(n: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """yolov7-tiny, 3 classes, 96x96: the raw and the NMS graph plus a deploy checkpoint."""
    out = tmp_path_factory.mktemp("tiny")
    src = source_from_model(make_model("yolov7-tiny", 3), names=["a", "b", "c"], image_size=96)
    raw = export(src, out / "raw", ExportOptions(formats=("deploy", "onnx"), dynamic_size=True))
    nms = export(src, out / "nms", ExportOptions(formats=("onnx",), nms=True, conf_thres=CONF, iou_thres=0.5,
                                                 max_det=50))
    return src, raw, nms


def _assert_same_dets(ref, got, box_tol=1e-3, score_tol=1e-4):
    """Same detections per image; every image must have some (empty vs empty proves nothing)."""
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert r.shape == g.shape, (r.shape, g.shape)
        assert len(r) > 0, "no detections to compare: lower CONF or spread the head more"
        r, g = r[torch.argsort(r[:, 4])], g[torch.argsort(g[:, 4])]
        assert (r[:, :4] - g[:, :4]).abs().max() <= box_tol
        assert (r[:, 4:] - g[:, 4:]).abs().max() <= score_tol


def test_tiny_report_passes_and_is_written(tiny):
    _, raw, nms = tiny
    for report in (raw, nms):
        assert report["passed"]
        assert json.loads(Path(report["outputs"]["report"]).read_text())["passed"]
    assert set(raw["checks"]) == {"fused_vs_unfused", "onnx_vs_pytorch", "onnx_batch1_vs_batchN",
                                  "onnx_vs_pytorch_128x160"}
    assert raw["checks"]["fused_vs_unfused"]["boxes_px"] > 0  # something was folded
    check = nms["checks"]["onnx_nms_vs_torchvision"]
    assert check["reference_detections"] > 10 and check["identical"] == check["reference_detections"] == check["detections"]


def test_onnx_detector_matches_pytorch_path(tiny):
    src, raw, nms = tiny
    x = images(3, 96, 96)
    with torch.no_grad():
        pred = src.deploy_model()(x)
    want = non_max_suppression(pred, CONF, 0.5, multi_label=False, max_det=50)
    det_raw, det_nms = OnnxDetector(raw["outputs"]["onnx"]), OnnxDetector(nms["outputs"]["onnx"])
    assert det_raw.names == ["a", "b", "c"] and det_raw.stride == 32 and not det_raw.has_nms
    assert det_nms.has_nms and det_nms.nms["max_det"] == 50
    _assert_same_dets(want, det_raw.detect(x, CONF, 0.5, max_det=50))
    _assert_same_dets(want, det_nms.detect(x, CONF, 0.5, max_det=50))
    # dynamic size: a non-square input the raw graph was not traced at
    x2 = images(1, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(det_raw.raw(x2), src.deploy_model()(x2), atol=1e-3, rtol=0)


@pytest.mark.parametrize("graph", ["raw", "nms"])
def test_dynamic_batch_same_per_image(tiny, graph):
    report = tiny[1] if graph == "raw" else tiny[2]
    det = OnnxDetector(report["outputs"]["onnx"])
    x = images(3, 96, 96, seed=5)
    batch = det.detect(x, CONF, 0.5, max_det=50)
    for i in range(3):
        _assert_same_dets([det.detect(x[i:i + 1], CONF, 0.5, max_det=50)[0]], [batch[i]], 1e-4, 1e-6)


def test_deploy_checkpoint_roundtrip(tiny, tmp_path):
    src, raw, _ = tiny
    loaded = load_source(raw["outputs"]["deploy"])
    assert loaded.kind == "deploy" and loaded.fused and loaded.names == ["a", "b", "c"]
    assert loaded.spec["variant"] == "yolov7-tiny" and loaded.spec["num_classes"] == 3
    ckpt = torch.load(raw["outputs"]["deploy"], weights_only=True)
    assert ckpt["format"] == "yolov7-lightning-deploy" and ckpt["image_size"] == 96
    x = images(2, 96, 96)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), src.deploy_model()(x))
    # a deploy checkpoint exports too (no unfused model to compare with)
    report = export(raw["outputs"]["deploy"], tmp_path, ExportOptions(formats=("onnx",), dynamic_batch=False))
    assert report["source_kind"] == "deploy" and "fused_vs_unfused" not in report["checks"]
    assert OnnxDetector(report["outputs"]["onnx"]).fixed_batch == 1


@pytest.mark.parametrize("nms", [False, True], ids=["raw", "nms"])
def test_p6_variant(tmp_path, nms):
    """yolov7-w6 (aux head on, as officially) at a quarter of the width: the full P6 structure (4
    levels, stride 64, ReOrg stem, aux head dropped by fusion), 16x fewer weights to export."""
    spec = {"variant": "yolov7-w6", "num_classes": 2, "scaling": {"mode": "width", "width": 0.25}}
    src = source_from_model(make_model("yolov7-w6", 2, seed=3, scaling=spec["scaling"]), spec=spec, image_size=128)
    report = export(src, tmp_path, ExportOptions(formats=("onnx",), nms=nms, conf_thres=CONF, check_batch=2))
    assert report["passed"], report["checks"]
    assert src.model.max_stride == 64
    if nms:
        assert report["checks"]["onnx_nms_vs_torchvision"]["reference_detections"] > 0


def test_single_class_multi_label_nms(tmp_path):
    """nc = 1 (score = objectness) and multi-label NMS."""
    src = source_from_model(make_model("yolov7-tiny", 1, seed=2), image_size=64)
    report = export(src, tmp_path, ExportOptions(formats=("onnx",), nms=True, conf_thres=CONF, multi_label=True))
    assert report["passed"] and report["checks"]["onnx_nms_vs_torchvision"]["reference_detections"] > 0
    src = source_from_model(make_model("yolov7-tiny", 4, seed=2), image_size=64)
    report = export(src, tmp_path / "4", ExportOptions(formats=("onnx",), nms=True, conf_thres=1e-3,
                                                       multi_label=True))
    assert report["passed"] and report["checks"]["onnx_nms_vs_torchvision"]["reference_detections"] > 0


def test_official_checkpoint_source(tmp_path):
    ref = build_model("yolov7-tiny", num_classes=5)
    path = save_official(tmp_path / "yolov7-tiny.pt", random_official(ref, "training", seed=4), 5)
    report = export(path, tmp_path / "out", ExportOptions(formats=("deploy", "onnx", "torchscript"),
                                                          image_size=64))
    assert report["source_kind"] == "official" and report["passed"], report["checks"]
    assert report["model"] == {"variant": "yolov7-tiny", "num_classes": 5, "aux_head": False}
    assert {"fused_vs_unfused", "onnx_vs_pytorch", "torchscript_vs_pytorch"} <= set(report["checks"])
    assert load_source(report["outputs"]["deploy"]).model.num_classes == 5


def test_impossible_tolerance_fails_loudly(tiny, tmp_path):
    src = tiny[0]
    opts = ExportOptions(formats=("onnx",), tolerances=Tolerances(box_px=1e-12, score=1e-12))
    with pytest.raises(ExportCheckError, match="fused_vs_unfused"):
        export(src, tmp_path, opts)
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert report["passed"] is False and not report["checks"]["fused_vs_unfused"]["passed"]


def test_cli_fails_with_nonzero_exit(tiny, tmp_path):
    ckpt = tiny[1]["outputs"]["deploy"]
    base = [sys.executable, "-m", "yolov7_lightning.cli.export", f"ckpt={ckpt}", f"out_dir={tmp_path}"]
    from hydra import compose, initialize_config_dir

    from yolov7_lightning.cli.export import run
    from yolov7_lightning.config import register_configs

    register_configs()  # the schemas and the tolerances of export/check.py, as every command registers them
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("export", [f"ckpt={ckpt}", f"out_dir={tmp_path}", "format=[deploy,onnx]", "nms=true"])
    assert run(cfg)["passed"]
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "deploy.pt").is_file()
    bad = subprocess.run(base + ["format=onnx", "tolerances.box_px=1e-12", "tolerances.score=1e-12"], check=False, cwd=REPO,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "ExportCheckError" in bad.stderr


def test_callback_writes_next_to_checkpoints(tmp_path):
    from yolov7_lightning.training.callbacks.export import DeployExport

    model = make_model("yolov7-tiny", 2)
    module = SimpleNamespace(model=model, hparams={"model": {"_target_": "yolov7_lightning.models.build_model",
                                                             "variant": "yolov7-tiny", "num_classes": 2,
                                                             "weights": None, "scaling": {"mode": "none"}},
                                                   "names": ["x", "y"], "image_size": 64})
    trainer = SimpleNamespace(is_global_zero=True, checkpoint_callback=SimpleNamespace(dirpath=str(tmp_path / "ckpt")),
                              default_root_dir=str(tmp_path), sanity_checking=False)
    cb = DeployExport()
    cb.on_fit_end(trainer, module)
    out = tmp_path / "ckpt"
    assert {p.name for p in out.iterdir()} >= {"deploy.pt", "model.onnx", "export_report.json"}
    assert cb.report["passed"] and model.training is False and not model.deploy  # the live model is untouched
    assert load_source(out / "deploy.pt").names == ["x", "y"]
