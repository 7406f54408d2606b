"""``model.elan_repconv``: the ELAN 3x3 convs as RepConvN / RepConv-with-identity (paper Table 4).

The training networks differ by exactly the extra branches; the deploy networks are identical to the
official one (so the default keeps the official counts); fused and unfused outputs agree.
"""

from __future__ import annotations

import pytest
import torch

from tests.helpers import OFFICIAL, randomise_statistics
from yolov7_lightning.models import build_model
from yolov7_lightning.models.fuse import to_deploy
from yolov7_lightning.models.summary import count_params
from yolov7_lightning.nn import ELAN, Conv, RepConv

MODES = ("none", "planned", "identity")


def _elan_convs(model) -> list:
    return [conv for m in model.modules() if isinstance(m, ELAN) for conv in m.m]


@pytest.mark.parametrize("mode", MODES)
def test_fused_equals_unfused(mode):
    torch.manual_seed(0)
    model = randomise_statistics(build_model("yolov7-tiny", num_classes=5, elan_repconv=mode), seed=1).eval()
    deploy = to_deploy(model)
    x = torch.rand(2, 3, 128, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        raw_a, raw_b = model.forward_heads(x, with_aux=False).lead, deploy.forward_heads(x).lead
        a, b = model(x), deploy(x)
    for la, lb in zip(raw_a, raw_b):
        assert (la - lb).abs().max().item() <= 1e-4
    assert (a[..., 4:] - b[..., 4:]).abs().max().item() <= 1e-4
    assert (a[..., :4] - b[..., :4]).abs().max().item() <= 1e-3  # px
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deploy.modules())
    assert all(m.rbr_reparam is not None for m in deploy.modules() if isinstance(m, RepConv))


def test_block_types_and_parameter_counts():
    models = {mode: build_model("yolov7-tiny", elan_repconv=mode) for mode in MODES}
    convs = {mode: _elan_convs(m) for mode, m in models.items()}
    assert len(convs["none"]) == 16 and all(type(c) is Conv for c in convs["none"])  # tiny: 8 ELANs x 2
    assert all(isinstance(c, RepConv) and c.rbr_identity is None for c in convs["planned"])
    assert all(isinstance(c, RepConv) and c.rbr_identity is not None for c in convs["identity"])  # tiny: all c -> c
    # exactly the extra branches: a 1x1 conv + BN (weight, bias) per conv; identity adds one more BN
    extra_1x1 = sum(c.conv.in_channels * c.conv.out_channels + 2 * c.conv.out_channels for c in convs["none"])
    extra_id = sum(2 * c.conv.in_channels for c in convs["none"] if c.conv.in_channels == c.conv.out_channels)
    train = {mode: count_params(m) for mode, m in models.items()}
    assert train["none"] == OFFICIAL["yolov7-tiny"][0]
    assert train["planned"] == train["none"] + extra_1x1
    assert train["identity"] == train["planned"] + extra_id
    deploy = {mode: count_params(to_deploy(m)) for mode, m in models.items()}
    assert set(deploy.values()) == {OFFICIAL["yolov7-tiny"][1]}  # a freebie: the deploy network is the official one


def test_identity_only_where_channels_match():
    model = build_model("yolov7", elan_repconv="identity")  # head ELANs start with a c -> c/2 3x3 conv
    convs = _elan_convs(model)
    with_id = [c for c in convs if c.rbr_identity is not None]
    assert 0 < len(with_id) < len(convs)
    assert all(c.c1 == c.c2 for c in with_id) and all(c.c1 != c.c2 for c in convs if c.rbr_identity is None)


def test_default_is_official_and_bad_values_fail():
    assert build_model("yolov7-tiny").elan_repconv == "none"
    with pytest.raises(ValueError, match="elan_repconv"):
        build_model("yolov7-tiny", elan_repconv="yes")
    with pytest.raises(ValueError, match="eelan_form=branches"):
        build_model("yolov7-e6e", elan_repconv="planned", eelan_form="grouped")


def test_deploy_checkpoint_round_trip(tmp_path):
    """The deploy checkpoint records elan_repconv, so the fused RepConv tensors load back strictly."""
    from yolov7_lightning.export.deploy import load_deploy, save_deploy, source_from_model

    model = randomise_statistics(build_model("yolov7-tiny", num_classes=3, elan_repconv="identity"), seed=3).eval()
    spec = {"_target_": "x", "variant": "yolov7-tiny", "num_classes": 3, "elan_repconv": "identity"}
    path = save_deploy(source_from_model(model, spec=spec), tmp_path / "deploy.pt")
    loaded = load_deploy(path)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert (loaded(x)[..., 4:] - model(x)[..., 4:]).abs().max().item() <= 1e-4
