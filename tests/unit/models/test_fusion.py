"""The deploy form (BN, RepConv and implicit folded, aux dropped) gives the same eval outputs."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import VARIANTS, randomise_statistics
from yolov7_lightning.models import build_model
from yolov7_lightning.models.fuse import to_deploy
from yolov7_lightning.nn import Conv, RepConv


def _compare(model, x):
    model.eval()
    deploy = to_deploy(model)
    with torch.no_grad():
        a, b = model(x), deploy(x)
    return deploy, (a[..., :4] - b[..., :4]).abs().max().item(), (a[..., 4:] - b[..., 4:]).abs().max().item()


@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_equals_unfused(variant):
    torch.manual_seed(0)
    model = randomise_statistics(build_model(variant, num_classes=7), seed=1)
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(2))
    deploy, box_err, score_err = _compare(model, x)
    assert box_err <= 1e-3, f"{variant}: boxes differ by {box_err} px"
    assert score_err <= 1e-4, f"{variant}: scores differ by {score_err}"
    # the deploy form really is fused
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deploy.modules())
    assert all(m.rbr_reparam is not None for m in deploy.modules() if isinstance(m, RepConv))
    assert deploy.aux_convs is None and deploy.detect.m2 is None and deploy.detect.fused
    assert not hasattr(deploy.detect, "ia")


def test_fusion_leaves_the_original_untouched():
    model = randomise_statistics(build_model("yolov7-tiny")).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    to_deploy(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("identity", [None, True])
def test_repconv_fuses_exactly(identity):
    torch.manual_seed(0)
    block = RepConv(16, 16, identity=identity)
    randomise_statistics(block, spread=0.5)
    block.eval()
    x = torch.randn(2, 16, 12, 12)
    with torch.no_grad():
        ref = block(x)
        block.fuse()
        got = block(x)
    assert (block.rbr_identity is None) and block.rbr_reparam is not None
    assert torch.allclose(ref, got, atol=1e-5)


def test_repconv_planned_rule_has_no_identity():
    assert RepConv(16, 16).rbr_identity is None  # planned: no identity unless asked
    assert RepConv(16, 16, identity=True).rbr_identity is not None
    with pytest.raises(ValueError, match="c1 == c2"):
        RepConv(16, 32, identity=True)


def test_conv_bn_fold():
    torch.manual_seed(0)
    conv = randomise_statistics(Conv(8, 12, 3, 2), spread=0.5).eval()
    x = torch.randn(1, 8, 10, 10)
    with torch.no_grad():
        ref = conv(x)
        conv.fuse()
        assert conv.conv.bias is not None and isinstance(conv.bn, torch.nn.Identity)
        assert torch.allclose(ref, conv(x), atol=1e-5)


def test_repconv_modes_in_the_model():
    assert any(isinstance(m, RepConv) for m in build_model("yolov7").lead_convs)
    assert not any(isinstance(m, RepConv) for m in build_model("yolov7", repconv="off").lead_convs)
