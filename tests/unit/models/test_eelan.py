"""E-ELAN: the two-branch form (official) and the expand/shuffle/merge-cardinality form agree."""

from __future__ import annotations

import torch

from tests.helpers import randomise_statistics
from yolov7_lightning.models import build_model
from yolov7_lightning.models.summary import count_params
from yolov7_lightning.nn import EELAN, EELANGrouped, ELANSpec, eelan_to_grouped, grouped_to_eelan

SPEC = ELANSpec(c=16, c3=8, n=4, block=1, c2=24)


def _eval_outputs(block, x):
    block.eval()
    with torch.no_grad():
        return block.forward_tap(x)


def test_branches_to_grouped_same_output_and_tap():
    torch.manual_seed(0)
    two = randomise_statistics(EELAN(12, SPEC))
    x = torch.randn(2, 12, 10, 10)
    out, tap = _eval_outputs(two, x)
    grouped = eelan_to_grouped(two)
    assert isinstance(grouped, EELANGrouped) and grouped.transition.conv.groups == 2
    g_out, g_tap = _eval_outputs(grouped, x)
    assert torch.allclose(out, g_out, atol=1e-5)
    assert torch.allclose(tap, g_tap, atol=1e-5)  # the partial aux head reads the same branch
    assert count_params(two) == count_params(grouped)


def test_grouped_to_branches_round_trip():
    torch.manual_seed(1)
    grouped = randomise_statistics(EELANGrouped(12, ELANSpec(16, 16, 6, 2, 20), act="silu"))
    x = torch.randn(1, 12, 8, 8)
    ref, _ = _eval_outputs(grouped, x)
    two = grouped_to_eelan(grouped)
    got, _ = _eval_outputs(two, x)
    assert torch.allclose(ref, got, atol=1e-5)
    back = eelan_to_grouped(two)
    assert all(torch.equal(a, b) for a, b in zip(grouped.state_dict().values(), back.state_dict().values()))


def test_the_two_branches_are_not_identical():
    two = EELAN(12, SPEC)
    a, b = two.branches
    assert not torch.equal(a.cv1.conv.weight, b.cv1.conv.weight)


def test_e6e_grouped_form_builds_the_same_network():
    with torch.device("meta"):
        branches = build_model("yolov7-e6e")
        grouped = build_model("yolov7-e6e", eelan_form="grouped")
    assert count_params(branches) == count_params(grouped) == 166_408_884
    assert any(isinstance(m, EELANGrouped) for m in grouped.modules())
