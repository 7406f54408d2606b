"""Width, depth and compound scaling (paper section 3.2 / Table 3)."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from yolov7_lightning.models import build_model, get_arch
from yolov7_lightning.models.scaling import scale_arch
from yolov7_lightning.models.summary import count_params
from yolov7_lightning.nn import ELAN, ConvDown, DownC, MPConv

SCALINGS = {
    "none": {"mode": "none"},
    "width": {"mode": "width", "width": 1.25},
    "depth": {"mode": "depth", "depth": 1.5},
    "compound": {"mode": "compound", "depth": 1.5},
}


def build(variant, scaling):
    with torch.device("meta"):
        return build_model(variant, scaling=scaling)


def transitions(model):
    """(in, out) channels of every transition layer, in build order: the ELAN 1x1 transitions and
    the down-sampling transitions that have a width of their own."""
    out = []
    for m in model.modules():
        if isinstance(m, ELAN):
            out.append((m.transition.conv.in_channels, m.transition.conv.out_channels))
        elif isinstance(m, MPConv):
            out.append((m.cv2.conv.in_channels, m.c2))
        elif isinstance(m, (DownC, ConvDown)):
            out.append((m.cv1.conv.in_channels if isinstance(m, DownC) else m.conv.in_channels, m.c2))
    return out


def ratios(model):
    return [Fraction(i, o) for i, o in transitions(model)]


@pytest.mark.parametrize("variant", ["yolov7-tiny", "yolov7", "yolov7-w6", "yolov7-e6"])
@pytest.mark.parametrize("mode", ["width", "compound"])
def test_width_and_compound_keep_transition_ratios(variant, mode):
    # width 1.5 keeps every channel count a multiple of 8 for these variants (no rounding)
    scaling = {"mode": "width", "width": 1.5} if mode == "width" else SCALINGS[mode]
    base, scaled = build(variant, SCALINGS["none"]), build(variant, scaling)
    assert len(transitions(base)) == len(transitions(scaled)) > 0
    assert ratios(scaled) == ratios(base)
    assert count_params(scaled) > count_params(base)


@pytest.mark.parametrize("variant", ["yolov7-tiny", "yolov7", "yolov7-w6", "yolov7-e6"])
def test_depth_only_changes_transition_ratios(variant):
    base, deep = build(variant, SCALINGS["none"]), build(variant, SCALINGS["depth"])
    changed = [a != b for a, b in zip(ratios(base), ratios(deep))]
    assert any(changed)
    # every ELAN transition now reads more channels but writes as many as before
    elans_base = [m for m in base.modules() if isinstance(m, ELAN)]
    elans_deep = [m for m in deep.modules() if isinstance(m, ELAN)]
    for a, b in zip(elans_base, elans_deep):
        assert b.transition.conv.out_channels == a.transition.conv.out_channels
        assert b.transition.conv.in_channels > a.transition.conv.in_channels


def test_depth_multiplies_the_3x3_convs_of_every_elan():
    base, deep = build("yolov7", SCALINGS["none"]), build("yolov7", SCALINGS["depth"])
    n_base = [len(m.m) for m in base.modules() if isinstance(m, ELAN)]
    n_deep = [len(m.m) for m in deep.modules() if isinstance(m, ELAN)]
    assert n_base == [4] * 8 and n_deep == [6] * 8


def test_compound_yolov7_widens_transitions_like_yolov7x():
    """Depth x1.5 turns the 4-tensor backbone concat into 5 tensors: transitions x1.25 (X's rule)."""
    arch = scale_arch(get_arch("yolov7"), "compound", depth=1.5)
    assert [spec.c2 for _, spec in arch.stages] == [320, 640, 1280, 1280]
    assert [d for d, _ in arch.stages] == [None, 160, 320, 640]  # MP-1 widths follow, as in yolov7x
    assert [spec.n for _, spec in arch.stages] == [6, 6, 6, 6]


def test_width_scaling_multiplies_every_channel():
    base, wide = build("yolov7-tiny", SCALINGS["none"]), build("yolov7-tiny", SCALINGS["width"])
    conv_base = [m.out_channels for m in base.modules() if isinstance(m, torch.nn.Conv2d)]
    conv_wide = [m.out_channels for m in wide.modules() if isinstance(m, torch.nn.Conv2d)]
    head = 3 * 85
    assert [c * 5 // 4 if c != head else c for c in conv_base] == conv_wide


def test_unknown_scaling_lists_valid_names():
    with pytest.raises(ValueError, match="valid: none, width, depth, compound"):
        build_model("yolov7", scaling={"mode": "tall"})
    with pytest.raises(ValueError, match="> 0"):
        build_model("yolov7", scaling={"mode": "width", "width": 0})


def test_scaled_model_runs():
    model = build_model("yolov7-tiny", num_classes=3, scaling=SCALINGS["compound"]).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 3 * (64 + 16 + 4), 8)
