"""Every variant matches the official parameter counts exactly and the FLOPs within 0.5%."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import OFFICIAL, VARIANTS
from yolov7_lightning.models import build_model, get_arch
from yolov7_lightning.models.fuse import to_deploy
from yolov7_lightning.models.summary import count_gflops, count_params, summarize


def meta_model(variant: str, **kw):
    with torch.device("meta"):
        return build_model(variant, **kw)


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_counts_match_official(variant):
    params_train, params_deploy, *_ = OFFICIAL[variant]
    model = meta_model(variant)
    assert count_params(model) == params_train
    assert count_params(to_deploy(model)) == params_deploy


@pytest.mark.parametrize("variant", VARIANTS)
def test_gflops_within_half_percent(variant):
    _, _, gf_train, gf_deploy, size = OFFICIAL[variant]
    info = summarize(meta_model(variant))
    assert info["image_size"] == size
    assert info["gflops_train"] == pytest.approx(gf_train, rel=0.005)
    assert info["gflops_deploy"] == pytest.approx(gf_deploy, rel=0.005)


def test_gflops_scale_with_area():
    model = meta_model("yolov7-tiny")
    assert count_gflops(model, 640) == pytest.approx(4 * count_gflops(model, 320), rel=1e-6)
    assert count_gflops(model, (320, 640)) == pytest.approx(2 * count_gflops(model, 320), rel=1e-6)


def test_num_classes_changes_only_the_head():
    base, three = meta_model("yolov7"), meta_model("yolov7", num_classes=3)
    per_level_in = sum(c for c in (256, 512, 1024))
    # 3 anchors x (80 - 3) outputs fewer per level: conv weights + biases + implicit M
    assert count_params(base) - count_params(three) == 3 * 77 * (per_level_in + 3 + 3)


def test_training_and_eval_outputs_contract():
    model = build_model("yolov7-tiny", num_classes=4)
    x = torch.rand(2, 3, 128, 96)  # non-square
    model.train()
    out = model(x)
    assert [tuple(t.shape) for t in out.lead] == [(2, 3, 16, 12, 9), (2, 3, 8, 6, 9), (2, 3, 4, 3, 9)]
    assert out.aux is None
    model.eval()
    with torch.no_grad():
        dec = model(x)
    assert dec.shape == (2, 3 * (16 * 12 + 8 * 6 + 4 * 3), 9)
    assert torch.all((dec[..., 4:] >= 0) & (dec[..., 4:] <= 1))


def test_head_bias_prior():
    model = build_model("yolov7", num_classes=80)
    b = model.detect.m[0].bias.view(3, 85)
    # the conv bias init is U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the prior shifts it by log(8/80^2)
    assert torch.all((b[:, 4] - torch.log(torch.tensor(8 / 80 ** 2))).abs() <= 1 / 256 ** 0.5 + 1e-6)


def test_anchors_in_grid_units_and_pixels():
    model = meta_model("yolov7")
    arch = get_arch("yolov7")
    assert model.detect.anchor_grid.shape == (3, 1, 3, 1, 1, 2)
    assert model.detect.anchors.shape == (3, 3, 2)
    real = build_model("yolov7")
    assert real.detect.anchors[0, 0].tolist() == [12 / 8, 16 / 8]
    assert real.detect.anchor_grid[2, 0, 2, 0, 0].tolist() == [459.0, 401.0]
    assert arch.strides == (8, 16, 32)


def test_bn_hyper_parameters_and_activation():
    model = meta_model("yolov7-tiny")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)
    assert any(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.1 for m in model.modules())
    assert not any(isinstance(m, torch.nn.SiLU) for m in model.modules())
    assert not any(isinstance(m, torch.nn.LeakyReLU) for m in meta_model("yolov7").modules())


def test_unknown_variant_lists_valid_names():
    with pytest.raises(ValueError, match="valid: yolov7-tiny, yolov7, yolov7x, yolov7-w6"):
        build_model("yolov8")


@pytest.mark.parametrize("kw", [{"num_classes": 0}, {"repconv": "maybe"}, {"eelan_form": "x"}, {"aux_tap": "y"}])
def test_bad_switches_are_clear_errors(kw):
    with pytest.raises(ValueError, match="num_classes must be >= 1|valid:"):
        build_model("yolov7-tiny", **kw)


def test_input_not_divisible_by_stride():
    model = build_model("yolov7-w6").eval()
    with pytest.raises(ValueError, match="not divisible by the max stride 64"):
        model(torch.zeros(1, 3, 96, 128))
