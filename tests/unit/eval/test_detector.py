"""The one prediction path (eval/detector.py): TorchDetector is the network's eval output + the NMS,
whatever mode the network is in (left as it was); it reads every checkpoint kind through the reader;
the validation pictures take their boxes from it; the ONNX graph gives its detections."""

from __future__ import annotations

import pytest
import torch

from tests.unit.export.test_export import make_model
from yolov7_lightning.eval import TorchDetector, non_max_suppression
from yolov7_lightning.models.checkpoint_reader import CheckpointError
from yolov7_lightning.training.callbacks.visuals import ValidationVisuals
from yolov7_lightning.training.module import YOLOv7Module

CONF = 0.01


def images(n: int = 2, h: int = 64, w: int = 96, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_detect_is_the_eval_forward_then_nms_and_leaves_the_mode_alone():
    model = make_model("yolov7-tiny", 3, aux_head=True).train()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    x = images()
    detector = TorchDetector(model, names=["a", "b", "c"])
    got, raw = detector.detect(x, CONF, 0.5, max_det=50), detector.raw(x)
    dets, heads = detector.detect_with_heads(x, conf_thres=CONF, iou_thres=0.5, max_det=50)
    assert model.training and all(m.training for m in model.modules())  # the mode is put back
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())  # BN ran in eval mode
    with torch.no_grad():
        want = model.eval()(x)
        lead = model.forward_heads(x).lead
    assert torch.equal(raw, want)
    assert sum(len(d) for d in got) > 0
    for ref, a, b in zip(non_max_suppression(want, CONF, 0.5, multi_label=False, max_det=50), got, dets):
        assert torch.equal(ref, a) and torch.equal(ref, b)
    assert heads.aux is not None and all(torch.equal(p, q) for p, q in zip(heads.lead, lead))
    assert detector.stride == 32 and detector.fixed_size is None and detector.category_ids is None


def test_from_checkpoint_reads_training_and_deploy_files(tmp_path):
    from yolov7_lightning.export import ExportOptions, export, source_from_model

    module = YOLOv7Module(model={"_target_": "yolov7_lightning.models.build_model", "variant": "yolov7-tiny",
                                 "num_classes": 2},
                          loss={"_target_": "yolov7_lightning.loss.YOLOv7Loss", "_partial_": True},
                          assigner={"_target_": "yolov7_lightning.assign.Assigner", "strategy": "lead_only"},
                          optim={}, schedule={}, image_size=96, batch_size=2, names=["cat", "dog"],
                          category_ids=[3, 7], channels_last=True)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, tmp_path / "t.ckpt")
    detector = TorchDetector.from_checkpoint(tmp_path / "t.ckpt")
    assert (detector.names, detector.category_ids, detector.image_size) == (["cat", "dog"], [3, 7], 96)
    assert detector.channels_last and not detector.model.training
    x = images()
    with torch.no_grad():
        want = module.model.eval()(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(detector.raw(x), want)  # the EMA weights, in the memory format they were trained in

    src = source_from_model(make_model("yolov7-tiny", 3), names=["a", "b", "c"], image_size=64)
    report = export(src, tmp_path / "out", ExportOptions(formats=("deploy",)))
    deploy = TorchDetector.from_checkpoint(report["outputs"]["deploy"])
    assert deploy.model.deploy and deploy.names == ["a", "b", "c"] and not deploy.channels_last
    with torch.no_grad():
        assert torch.equal(deploy.raw(x), src.deploy_model()(x))
    torch.save({"state_dict": {}}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match="not a YOLOv7 checkpoint"):
        TorchDetector.from_checkpoint(tmp_path / "bad.ckpt")


def test_onnx_detector_gives_the_torch_detectors_detections(tmp_path):
    pytest.importorskip("onnxruntime")
    from yolov7_lightning.eval.onnx_predict import OnnxDetector
    from yolov7_lightning.export import ExportOptions, export, source_from_model

    src = source_from_model(make_model("yolov7-tiny", 3), names=["a", "b", "c"], image_size=64)
    report = export(src, tmp_path, ExportOptions(formats=("deploy", "onnx")))
    torch_det = TorchDetector.from_checkpoint(report["outputs"]["deploy"])
    onnx_det = OnnxDetector(report["outputs"]["onnx"])
    assert (onnx_det.names, onnx_det.stride, onnx_det.category_ids) == (torch_det.names, 32, None)
    x = images(2, 64, 64)
    for want, got in zip(torch_det.detect(x, CONF, 0.5, max_det=50), onnx_det.detect(x, CONF, 0.5, max_det=50)):
        assert len(want) > 0 and want.shape == got.shape
        want, got = want[torch.argsort(want[:, 4])], got[torch.argsort(got[:, 4])]
        assert (want[:, :4] - got[:, :4]).abs().max() <= 1e-3 and (want[:, 4:] - got[:, 4:]).abs().max() <= 1e-4


def test_validation_pictures_take_the_detectors_boxes():
    torch.manual_seed(0)
    model = make_model("yolov7-tiny", 2)
    module = type("M", (), {"model": model})()
    x = images(3, 64, 64)
    targets = torch.tensor([[0, 1, 20.0, 20, 16, 12], [2, 0, 40, 30, 20, 24]])
    cb = ValidationVisuals(num_images=2, conf_thres=CONF, iou_thres=0.5, max_det=20)
    snap = cb.capture(module, {"images": x, "targets": targets})
    want = TorchDetector(model).detect(x[:2], CONF, 0.5, max_det=20)
    assert len(snap.predictions) == 2 and sum(len(p) for p in snap.predictions) > 0
    assert all((p == w.numpy()).all() and p.shape == tuple(w.shape) for p, w in zip(snap.predictions, want))
    assert [g.shape for g in snap.ground_truth] == [(1, 6), (0, 6)]
