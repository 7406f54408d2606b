"""Training on your own data, through the commands: autoanchor (new anchors in the checkpoint,
the deploy file and ONNX, predictions equal to PyTorch's), single class, save_period, rect,
freeze (fine-tuning from a checkpoint: frozen weights and BN statistics unchanged) with image
weights, yolov7-data action=anchors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.integration.test_train import train

# boxes of ~3-6 px at 128 px: far below yolov7-tiny's smallest anchors (10x13)
SMALL_BOXES = ["data.source.min_size=3", "data.source.max_size=6", "data.source.max_objects=12"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own_data")
    first = train(tmp, "first", *SMALL_BOXES, "data.single_cls=true", "schedule.epochs=1", "save_period=1",
                  "visuals.enabled=false", "data.rect=true")
    tuned = train(tmp, "tuned", *SMALL_BOXES, "data.single_cls=true", "schedule.epochs=1", "export.enabled=false",
                  "visuals.enabled=false", f"model.weights={first / 'checkpoints' / 'last.ckpt'}", "freeze=[backbone]",
                  "data.image_weights=true")
    return tmp, first, tuned


def ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_autoanchor_anchors_travel_with_checkpoint_deploy_and_onnx(runs):
    _, first, _ = runs
    fit = json.loads((first / "metrics.json").read_text())["autoanchor"]
    assert fit["changed"] and fit["bpr_before"] < 0.98 <= fit["bpr_after"]
    new = torch.tensor(fit["anchors_after"], dtype=torch.float32).view(3, 1, 3, 1, 1, 2)
    assert not torch.allclose(new.flatten(), torch.tensor([10., 13, 16, 30, 33, 23, 30, 61, 62, 45, 59, 119,
                                                            116, 90, 156, 198, 373, 326]))
    for name in ("last.ckpt", "best.ckpt"):
        state = ckpt(first / "checkpoints" / name)["state_dict"]
        assert torch.allclose(state["model.detect.anchor_grid"], new, atol=1e-4)
        assert torch.allclose(state["model.detect.anchors"], new.view(3, 3, 2) / torch.tensor([8., 16, 32]).view(3, 1, 1))
    from yolov7_lightning.eval.onnx_predict import OnnxDetector
    from yolov7_lightning.export.deploy import load_deploy, load_source

    deploy = load_deploy(first / "checkpoints" / "deploy.pt")
    assert torch.allclose(deploy.detect.anchor_grid, new, atol=1e-4)
    assert torch.allclose(load_source(first / "checkpoints" / "last.ckpt").model.detect.anchor_grid, new, atol=1e-4)
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = deploy(images)
        deploy.detect.anchor_grid.fill_(10.0)  # the same network with other anchors predicts other sizes
        other = deploy(images)
    got = OnnxDetector(first / "checkpoints" / "model.onnx").raw(images)
    assert torch.allclose(got[..., :4], want[..., :4], atol=1e-3) and torch.allclose(got[..., 4:], want[..., 4:], atol=1e-4)
    assert (got[..., 2:4] - other[..., 2:4]).abs().max() > 1.0


def test_single_class_and_save_period(runs):
    _, first, _ = runs
    hp = ckpt(first / "checkpoints" / "last.ckpt")["hyper_parameters"]
    assert hp["names"] == ["item"] and hp["model"]["num_classes"] == 1
    assert ckpt(first / "checkpoints" / "last.ckpt")["state_dict"]["model.detect.m.0.weight"].shape[0] == 3 * 6
    metrics = json.loads((first / "metrics.json").read_text())
    assert list(metrics["per_class"]) == ["item"]
    assert (first / "checkpoints" / "epoch_000.ckpt").is_file()


def test_freeze_keeps_backbone_weights_and_bn_statistics(runs):
    _, first, tuned = runs
    start = ckpt(first / "checkpoints" / "last.ckpt")["state_dict"]  # the EMA weights model.weights loads
    end = ckpt(tuned / "checkpoints" / "last.ckpt")
    assert end["global_step"] > 0
    for key in ("state_dict", "current_model_state"):
        state = end[key]
        backbone = [k for k in state if k.startswith("model.backbone.")]
        assert any(k.endswith("running_mean") for k in backbone) and len(backbone) > 50
        assert all(torch.equal(state[k], start[k]) for k in backbone if not k.endswith("num_batches_tracked"))
        assert any(not torch.equal(state[k], start[k]) for k in state if k.startswith("model.neck.")
                   and k.endswith(".weight"))
    fit = json.loads((tuned / "metrics.json").read_text())["autoanchor"]
    first_fit = json.loads((first / "metrics.json").read_text())["autoanchor"]
    assert not fit["changed"] and fit["anchors_before"] == first_fit["anchors_after"]  # the weights' anchors fit


def test_data_anchors_command_prints_the_fit(runs):
    tmp, first, _ = runs
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.data", "action=anchors", "format=json",
           f"data.source.root={tmp / 'shapes'}", "data.source.num_train=24", "data.source.num_val=8",
           "data.source.image_size=128", "data.img_size=128", *SMALL_BOXES]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    for key in ("bpr_before", "bpr_after", "anchors_per_target_before", "anchors_per_target_after",
                "anchors_before", "anchors_after", "img_size"):
        assert key in result
    trained = json.loads((first / "metrics.json").read_text())["autoanchor"]
    assert result["img_size"] == 128 and result["anchors_after"] == trained["anchors_after"]
    assert np.array(result["anchors_before"]).shape == (3, 3, 2)


def test_eval_augment_and_save_txt(runs):
    tmp, first, _ = runs
    out = tmp / "eval_tta"
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.eval", f"ckpt={first / 'checkpoints' / 'last.ckpt'}",
           f"hydra.run.dir={out}", f"data.source.root={tmp / 'shapes'}", "data.source.num_train=24",
           "data.source.num_val=8", "data.source.image_size=128", "data.img_size=128", "data.single_cls=true",
           *SMALL_BOXES, "tta=true", "save_txt=true", "save_conf=true"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    predictions = json.loads((out / "predictions_coco.json").read_text())
    files = sorted((out / "labels").glob("*.txt"))
    assert files and len(files) == len({p["image_id"] for p in predictions})
    lines = [line.split() for f in files for line in f.read_text().splitlines()]
    assert len(lines) == len(predictions) and all(len(v) == 6 and v[0] == "0" for v in lines)
    values = np.array([[float(x) for x in v[1:]] for v in lines])
    assert (values[:, :4] >= -0.01).all() and (values[:, :4] <= 1.01).all()  # normalised by the image size
    scores = sorted(round(p["score"], 4) for p in predictions)
    assert np.allclose(sorted(values[:, 4]), scores, atol=1e-4)
    speed = json.loads((out / "metrics.json").read_text())["speed_ms"]  # official test.py speed figures
    assert speed["inference_ms"] > 0 and speed["nms_ms"] > 0 and speed["batch_size"] == 16  # 2 x the data group batch (shapes: 8)
    assert speed["total_ms"] == pytest.approx(speed["inference_ms"] + speed["nms_ms"], abs=0.02)
    assert "ms inference/NMS/total per image" in proc.stdout
