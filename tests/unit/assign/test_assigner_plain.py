"""The plain assigner (official ``loss_ota: 0``) and its loss equal the per-level reference of the
official ``ComputeLoss.build_targets`` (``yolov7_lightning.testing.reference_plain``)."""

from __future__ import annotations

import pytest
import torch

from tests.unit.assign.test_assigner_parity import SCENARIOS, batched_positives, scenario_inputs
from yolov7_lightning.assign import Assigner
from yolov7_lightning.loss import YOLOv7Loss
from yolov7_lightning.models import HeadGeometry
from yolov7_lightning.specs import to_spec
from yolov7_lightning.testing import reference_plain as ref


def run_both(variant, aux, scenario, nc=5, border=False):
    anchors, strides, outputs, targets = scenario_inputs(variant, aux, scenario, nc, border, target_seed=11)
    assigner = Assigner(strategy="plain")
    loss_fn = YOLOv7Loss(nc, HeadGeometry.from_anchors(anchors, strides), assigner, image_size=640)
    got = loss_fn(outputs, targets)
    result = loss_fn.assigner(outputs, targets)
    want, pos = ref.loss(outputs, targets, anchors, strides, nc, (loss_fn.box_gain, loss_fn.obj_gain, loss_fn.cls_gain))
    assert batched_positives(result.lead) == [sorted(p) for p in pos["lead"]]
    if aux:
        assert batched_positives(result.aux) == [sorted(p) for p in pos["aux"]]
    assert torch.isfinite(got.total)
    assert got.total.item() == pytest.approx(want.item(), rel=1e-6, abs=1e-9)
    return result, pos


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_plain_equals_reference_p5(scenario):
    run_both("yolov7", aux=False, scenario=scenario)


@pytest.mark.parametrize("scenario", ["many_boxes", "non_square", "images_without_boxes"])
def test_plain_with_aux_head_p6(scenario):
    run_both("yolov7-w6", aux=True, scenario=scenario)


def test_plain_borders_and_no_dedup():
    _, pos = run_both("yolov7-tiny", aux=False, scenario="many_boxes", border=True)
    lead = [p for level in pos["lead"] for p in level]
    assert len(lead) > len(set(lead))  # the same (cell, box) twice would be a bug; (cell) twice across boxes is not
    cells = [p[:4] for p in lead]
    assert len(cells) > len(set(cells))  # official: no de-duplication of cells taken by several boxes


def test_plain_config_group():
    from tests.unit.assign.test_assign_config import compose_with

    cfg = compose_with("assigner=plain", "model=yolov7")
    assigner = to_spec(Assigner, cfg.assigner, "assigner")
    assert isinstance(assigner, Assigner) and assigner.strategy == "plain"
    assert (assigner.lead.offset, assigner.aux.offset, assigner.anchor_t) == (0.5, 1.0, 4.0)
    assert cfg.model.aux_head is False  # official loss_ota: 0 runs without the aux head
    cfg = compose_with("assigner=plain", "model=yolov7-w6", "model.aux_head=true")
    assert cfg.model.aux_head is True  # allowed: the aux head then gets the plain 5-cell candidates
