"""The export self-checks hold for any weights and still catch real defects.

Sources: a checkpoint after one epoch of the small training settings (through the training CLI), a
freshly initialised model, and a barely trained model's saturated scores (head biases pushed up so
most objectness and class scores are >= 0.9999 and many are exactly 1.0, with exact class ties).
Every export passes with and without NMS; a BN folded with the wrong epsilon, or an NMS graph whose
IoU threshold is off by 0.1, fails. Class ties give one detection per box in the graph and PyTorch.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

from tests.integration.test_train import SMALL
from yolov7_lightning.eval import non_max_suppression
from yolov7_lightning.export import (
    FP16_TOLERANCES,
    ExportCheckError,
    ExportOptions,
    Tolerances,
    export,
    load_source,
    onnx_export,
    source_from_model,
)
from yolov7_lightning.export.nms import Select, split_detections
from yolov7_lightning.export.onnx_export import nms_part, onnx_session
from yolov7_lightning.models import build_model
from yolov7_lightning.models.fuse import to_deploy

pytest.importorskip("onnxruntime")

SIZE = 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """last.ckpt after one epoch of the small training settings (yolov7-tiny, shapes, 128 px)."""
    tmp = tmp_path_factory.mktemp("one_epoch")
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.train", f"hydra.run.dir={tmp / 'run'}",
           f"data.source.root={tmp / 'shapes'}", *SMALL, "schedule.epochs=1", "export.enabled=false",
           "visuals.enabled=false"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return load_source(tmp / "run" / "checkpoints" / "last.ckpt")


def fresh():
    torch.manual_seed(0)
    return source_from_model(build_model("yolov7-tiny", num_classes=5), image_size=SIZE)


def saturated():
    """A fresh model whose objectness/class biases are set to 10-26: scores mostly >= 0.9999, many
    exactly 1.0 in fp32 (sigmoid of a logit above ~17), exact class ties at 1.0."""
    torch.manual_seed(0)
    model = build_model("yolov7-tiny", num_classes=5)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for conv in model.detect.m:
            bias = conv.bias.view(model.detect.na, -1)
            bias[:, 4:] = 10 + 16 * torch.rand(bias[:, 4:].shape, generator=g)
    return source_from_model(model, image_size=SIZE)


def source(kind, request):
    return request.getfixturevalue("trained") if kind == "trained" else {"fresh": fresh, "saturated": saturated}[kind]()


@pytest.mark.parametrize("nms", [False, True], ids=["raw", "nms"])
@pytest.mark.parametrize("kind", ["trained", "fresh", "saturated"])
def test_every_check_passes_for_any_weights(request, tmp_path, kind, nms):
    src = source(kind, request)
    report = export(src, tmp_path, ExportOptions(formats=("onnx",), nms=nms, image_size=SIZE))
    assert report["passed"], report["checks"]
    checks = report["checks"]
    expected = {"fused_vs_unfused", "onnx_vs_pytorch", "onnx_batch1_vs_batchN"}
    if nms:
        expected |= {"onnx_nms_vs_torchvision", "onnx_nms_vs_torchvision_batch1", "onnx_nms_synthetic_vs_torchvision"}
    assert set(checks) == expected
    for name, check in checks.items():  # each records its inputs and the tolerance it applied
        assert check["inputs"] and check["tolerance"], name
        if "nms" in name:
            assert check["tolerance"] == "exact" and check["different"] == 0
            assert check["identical"] + check["ties_at_max_det"] == check["reference_detections"]
        else:
            assert check["tolerance"] == report["tolerances"] and check["boxes_vs_tolerance"] <= 1
    assert checks["fused_vs_unfused"]["boxes_px"] > 0  # something was folded
    if nms:  # the synthetic predictions exercise NMS whatever the weights
        assert checks["onnx_nms_synthetic_vs_torchvision"]["reference_detections"] > 100
    sat = report["check_images"]["saturated_objectness"]
    assert sat > 0.5 if kind == "saturated" else sat < 0.5


def _wrong_eps_fusion(src, monkeypatch):
    """Fold the BN of the stem's first conv with eps 1e-5 instead of its 1e-3."""
    model = copy.deepcopy(src.model)
    bn = model.backbone.stem[0].bn
    assert bn.eps == 1e-3
    bn.eps = 1e-5
    monkeypatch.setattr(type(src), "deploy_model", lambda self: to_deploy(model))


def test_wrong_bn_epsilon_fails(trained, tmp_path, monkeypatch):
    src = copy.copy(trained)
    _wrong_eps_fusion(src, monkeypatch)
    with pytest.raises(ExportCheckError, match="fused_vs_unfused"):
        export(src, tmp_path, ExportOptions(formats=("onnx",), image_size=SIZE))


class _OffIoU(Select):
    def __init__(self, conf_thres=0.25, iou_thres=0.45, max_det=300, multi_label=False):
        super().__init__(conf_thres, iou_thres + 0.1, max_det, multi_label)


def test_nms_graph_with_wrong_iou_threshold_fails(tmp_path, monkeypatch):
    """Caught even for a model with no detections on the check images (the synthetic predictions)."""
    monkeypatch.setattr(onnx_export, "Select", _OffIoU)
    report = export(fresh(), tmp_path, ExportOptions(formats=("onnx",), nms=True, image_size=SIZE),
                    raise_on_fail=False)
    assert not report["passed"]
    check = report["checks"]["onnx_nms_synthetic_vs_torchvision"]
    assert not check["passed"] and check["different"] > 10
    assert report["checks"]["onnx_nms_vs_torchvision"]["reference_detections"] == 0
    assert report["checks"]["onnx_vs_pytorch"]["passed"]  # the model part is fine


def test_class_ties_one_detection_per_box(tmp_path):
    """Boxes far apart whose best classes tie exactly: one detection each, with the first maximal class,
    in PyTorch (``non_max_suppression``, :class:`Select`) and in the ONNX graph."""
    cls = torch.tensor([[1.0, 1.0, 0.5], [0.2, 0.9, 0.9], [0.7, 0.7, 0.7], [0.3, 0.3, 1.0], [1.0, 0.0, 1.0]])
    n = len(cls)
    pred = torch.zeros(1, n, 5 + 3)
    pred[0, :, 0] = torch.arange(n) * 50.0 + 20  # 30 px boxes, 50 px apart: no overlap
    pred[0, :, 1] = 20
    pred[0, :, 2:4] = 30
    pred[0, :, 4] = 1.0
    pred[0, :, 5:] = cls
    want_cls = torch.tensor([0.0, 1.0, 0.0, 2.0, 0.0])
    torch_path = non_max_suppression(pred, 0.25, 0.45, multi_label=False)[0]
    select = split_detections(Select(0.25, 0.45)(pred), 1)[0]
    onnx_export.export_onnx(build_model("yolov7-tiny", num_classes=3).eval(), tmp_path / "e2e.onnx",
                            torch.rand(1, 3, 64, 64), nms={"conf_thres": 0.25, "iou_thres": 0.45, "max_det": 300,
                                                           "multi_label": False})
    got = onnx_session(nms_part(tmp_path / "e2e.onnx")).run(["detections"], {"predictions": pred.numpy()})[0]
    graph = split_detections(torch.from_numpy(got), 1)[0]
    for det in (torch_path, select, graph):
        assert len(det) == n
        order = torch.argsort(det[:, 0])
        assert torch.equal(det[order, 5], want_cls)
        assert torch.equal(det[order, 4], cls.amax(1))


def _onnx(path):
    import onnx

    return onnx.load(str(path))


@pytest.mark.parametrize("nms", [False, True], ids=["raw", "nms"])
def test_fp16_graph_within_fp16_tolerance(trained, tmp_path, nms):
    """fp16 ONNX (simplified too, with NMS): the network's weights are fp16, the interface float32;
    within the fp16 tolerances of the fp32 PyTorch model, outside the fp32 ones."""
    opts = ExportOptions(formats=("onnx",), image_size=SIZE, nms=nms, half=True, simplify=nms)
    report = export(trained, tmp_path, opts)
    assert report["passed"], report["checks"]
    check = report["checks"]["onnx_vs_pytorch"]
    assert check["tolerance"] == FP16_TOLERANCES.as_dict() and "fp16" in check["inputs"]
    fp32 = Tolerances()
    assert check["boxes_px"] > 10 * fp32.box_px and check["scores"] > fp32.score  # far outside fp32's ...
    assert check["boxes_vs_tolerance"] <= 1 and check["scores"] <= FP16_TOLERANCES.score  # ... but within its own
    proto = _onnx(report["outputs"]["onnx"])
    conv_weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    types = {t.data_type for t in proto.graph.initializer if t.name in conv_weights}
    assert types == {10}  # FLOAT16
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [1]  # float32 in and out
    assert [o.type.tensor_type.elem_type for o in proto.graph.output] == [1]
    assert {p.key: p.value for p in proto.metadata_props}["precision"] == "fp16"
    if nms:
        assert report["checks"]["onnx_nms_synthetic_vs_torchvision"]["different"] == 0


def test_simplified_graph_within_fp32_tolerance(trained, tmp_path):
    slim = export(trained, tmp_path / "slim", ExportOptions(formats=("onnx",), image_size=SIZE, nms=True,
                                                             simplify=True))
    assert slim["passed"] and slim["checks"]["onnx_vs_pytorch"]["tolerance"] == Tolerances().as_dict()
    assert slim["checks"]["onnx_nms_synthetic_vs_torchvision"]["identical"] > 100
    plain = onnx_export.export_onnx(trained.deploy_model(), tmp_path / "plain.onnx", torch.rand(1, 3, SIZE, SIZE),
                                    nms={"conf_thres": 0.25, "iou_thres": 0.45, "max_det": 300, "multi_label": False})
    assert len(_onnx(slim["outputs"]["onnx"]).graph.node) < 0.8 * len(_onnx(plain).graph.node)


@pytest.mark.parametrize("kind", ["trained", "fresh"])
def test_an_nms_check_with_nothing_to_compare_is_empty_not_passed(request, tmp_path, kind):
    """After one epoch (or none) no score reaches the default conf_thres 0.25 on the check images:
    their NMS comparison compares 0 of 0 detections. It is reported ``empty`` (not passed), and the
    report says that the NMS was checked on the synthetic predictions only."""
    report = export(source(kind, request), tmp_path, ExportOptions(formats=("onnx",), nms=True, image_size=SIZE))
    for name in ("onnx_nms_vs_torchvision", "onnx_nms_vs_torchvision_batch1"):
        check = report["checks"][name]
        assert check["reference_detections"] == check["detections"] == 0
        assert check["status"] == "empty" and check["passed"] is None, check
    synthetic = report["checks"]["onnx_nms_synthetic_vs_torchvision"]
    assert synthetic["status"] == "passed" and synthetic["passed"] is True and synthetic["reference_detections"] > 100
    assert report["passed"]  # nothing failed; the NMS rests on the synthetic check, visibly:
    assert report["nms_check"].startswith(
        f"the graph's NMS checked on {synthetic['reference_detections']} synthetic detections only: "
        "onnx_nms_vs_torchvision, onnx_nms_vs_torchvision_batch1 compared no detections (none above conf_thres 0.25")
    written = json.loads((tmp_path / "export_report.json").read_text())
    assert written["checks"]["onnx_nms_vs_torchvision"]["status"] == "empty"
    assert written["nms_check"] == report["nms_check"]


def test_an_nms_check_with_detections_counts(tmp_path):
    report = export(fresh(), tmp_path, ExportOptions(formats=("onnx",), nms=True, image_size=SIZE, conf_thres=1e-3))
    check = report["checks"]["onnx_nms_vs_torchvision"]
    assert check["status"] == "passed" and check["passed"] is True and check["reference_detections"] > 0
    n = sum(report["checks"][k]["reference_detections"]
            for k in ("onnx_nms_vs_torchvision", "onnx_nms_vs_torchvision_batch1"))
    assert report["nms_check"].startswith(f"the graph's NMS checked on {n} detections of the check images and ")


def test_export_command_prints_an_empty_nms_check(tmp_path, capsys):
    from hydra import compose, initialize_config_dir

    from tests.helpers import REPO
    from yolov7_lightning.cli.export import run
    from yolov7_lightning.export import save_deploy

    ckpt = save_deploy(fresh(), tmp_path / "fresh.pt")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("export", [f"ckpt={ckpt}", f"out_dir={tmp_path / 'out'}", "format=onnx", "nms=true"])
    assert run(cfg)["passed"]
    out = capsys.readouterr().out
    assert "onnx_nms_vs_torchvision              empty: no detections on either side (not counted as passed)" in out
    assert "0 of 0 detections identical" not in out
    assert "the graph's NMS checked on" in out and "synthetic detections only" in out
def test_a_provider_onnx_runtime_lacks_is_an_error_naming_it(tmp_path):
    path = onnx_export.export_onnx(build_model("yolov7-tiny", num_classes=3).eval(), tmp_path / "m.onnx",
                                   torch.rand(1, 3, 64, 64))
    assert onnx_session(path, providers=("CPUExecutionProvider",)).get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(RuntimeError, match=r"has no NoSuchExecutionProvider \(available: .*CPUExecutionProvider"):
        onnx_session(path, providers=("NoSuchExecutionProvider",))
