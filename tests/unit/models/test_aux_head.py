"""The auxiliary head switch for every variant, its attachment points and the E6E partial aux."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import VARIANTS
from yolov7_lightning.models import build_model
from yolov7_lightning.models.summary import count_params


@pytest.mark.parametrize("variant", VARIANTS)
def test_official_default(variant):
    with torch.device("meta"):
        model = build_model(variant)
    assert model.aux_head == variant.endswith(("6", "6e"))


@pytest.mark.parametrize("variant", ["yolov7-tiny", "yolov7", "yolov7x"])
def test_p5_aux_head_attaches_to_top_down_features(variant):
    with torch.device("meta"):
        plain, aux = build_model(variant), build_model(variant, aux_head=True)
    assert aux.aux_head and aux.detect.m2 is not None
    # aux convs read the top-down features: P3 top-down = lead P3 input, then higher top-down, SPP
    assert [c.conv.in_channels for c in aux.aux_convs] == aux.neck.aux_channels
    assert aux.neck.aux_channels[0] == aux.neck.out_channels[0]
    assert aux.neck.aux_channels[-1] == aux.arch.spp[1]
    assert count_params(aux) > count_params(plain)


def test_training_outputs_with_aux():
    model = build_model("yolov7-tiny", num_classes=2, aux_head=True).train()
    out = model(torch.rand(1, 3, 64, 96))
    assert out.aux is not None and len(out.aux) == len(out.lead) == 3
    assert [a.shape for a in out.aux] == [b.shape for b in out.lead]
    model.eval()
    with torch.no_grad():
        dec = model(torch.rand(1, 3, 64, 96))
    assert dec.shape[-1] == 7


def test_p6_aux_can_be_switched_off():
    with torch.device("meta"):
        off = build_model("yolov7-w6", aux_head=False)
    assert off.aux_convs is None and off.detect.m2 is None
    aux_convs = 369_280 + 1_475_840 + 3_319_680 + 5_900_800  # official layers 118-121
    aux_1x1 = sum(c * 255 + 255 for c in (320, 640, 960, 1280))  # IAuxDetect m2
    assert count_params(off) == 82_312_436 - aux_convs - aux_1x1


def test_e6e_partial_aux_reads_a_branch_before_the_merge():
    torch.manual_seed(0)
    branch = build_model("yolov7-e6e", num_classes=1).train()
    merged = build_model("yolov7-e6e", num_classes=1, aux_tap="merged").train()
    merged.load_state_dict(branch.state_dict())
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        a, b = branch(x), merged(x)
    # the lead head is the same, the three top-down aux inputs differ (the SPP tap is shared)
    assert all(torch.equal(p, q) for p, q in zip(a.lead, b.lead))
    assert [torch.equal(p, q) for p, q in zip(a.aux, b.aux)] == [False, False, False, True]
    # and the branch tap is exactly the second E-ELAN branch
    td = branch.neck.top_down[-1]
    with torch.no_grad():
        feats = branch.backbone(x)
        _, taps = branch.neck(feats)
    assert taps[0].shape[1] == td.elan.branches[1].c2
