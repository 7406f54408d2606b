"""The checkpoint reader: what each kind of file is identified as, what a load reports, and the
loads it refuses (another variant, a deploy file as starting weights)."""

from __future__ import annotations

import pytest
import torch

from yolov7_lightning.export.deploy import save_deploy, source_from_model
from yolov7_lightning.models import build_model
from yolov7_lightning.models.checkpoint_reader import CheckpointError, build_from, load_weights, read_checkpoint


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("yolov7-tiny", num_classes=3)


def test_kinds(tiny, tmp_path):
    own = tmp_path / "own.pt"
    torch.save(tiny.state_dict(), own)
    training = tmp_path / "train.ckpt"
    torch.save({"hyper_parameters": {"model": {"_target_": "x", "variant": "yolov7-tiny", "num_classes": 3},
                                     "names": ["a", "b", "c"], "image_size": 320},
                "state_dict": {f"model.{k}": v for k, v in tiny.state_dict().items()}}, training)
    deploy = save_deploy(source_from_model(tiny, names=["a", "b", "c"], image_size=256), tmp_path / "deploy.pt")
    got = {p.name: read_checkpoint(p) for p in (own, training, deploy)}
    assert [c.kind for c in got.values()] == ["state_dict", "training", "deploy"]
    assert got["train.ckpt"].spec == {"variant": "yolov7-tiny", "num_classes": 3}
    assert (got["train.ckpt"].names, got["train.ckpt"].image_size) == (["a", "b", "c"], 320)
    assert (got["deploy.pt"].names, got["deploy.pt"].image_size) == (["a", "b", "c"], 256)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = tiny.eval()(x)
        for name in ("train.ckpt", "deploy.pt"):
            assert torch.allclose(build_from(got[name])(x), ref, atol=1e-3, rtol=1e-4), name
    target = build_model("yolov7-tiny", num_classes=3)
    counts = load_weights(target, got["own.pt"])
    assert (len(counts.loaded), counts.mismatched, counts.missing, counts.unexpected) == (344, [], [], [])
    assert counts.share == 1.0
    with pytest.raises(CheckpointError, match=r"deploy.pt: is a deploy file \(fused tensors\)"):
        load_weights(target, got["deploy.pt"])
    with pytest.raises(CheckpointError, match=r"own.pt: is a plain state dict; yolov7-eval needs a training checkpoint"):
        read_checkpoint(own, kinds=("training",), purpose="yolov7-eval")


def test_another_variant_is_refused_unless_partial_is_intended(tiny, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny.state_dict(), path)
    big = build_model("yolov7", num_classes=3)
    before = {k: v.clone() for k, v in big.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"tiny.pt \(plain state dict\): \d+ tensors loaded, \d+ shape-mismatched, "
                                              r"\d+ missing, \d+ unexpected .*matches less than 50% of model yolov7.*"
                                              r"model.weights_partial=true"):
        load_weights(big, path)
    assert all(torch.equal(v, big.state_dict()[k]) for k, v in before.items())  # untouched
    counts = load_weights(big, path, allow_partial=True)
    assert 0 < counts.share < 0.5 and counts.loaded
