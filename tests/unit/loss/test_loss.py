"""Loss pieces: CIoU, the class cost, gains, components, host synchronisations, empty batches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import DEVICES
from tests.unit.assign.test_assigner_parity import anchors_of, geometry_of, random_outputs, random_targets
from yolov7_lightning.assign import Assigner
from yolov7_lightning.assign.simota import class_cost
from yolov7_lightning.boxes import ciou, pairwise_iou
from yolov7_lightning.loss import YOLOv7Loss, scaled_gains
from yolov7_lightning.models import HeadGeometry
from yolov7_lightning.testing.sync_counter import SyncCounter


def test_ciou_hand_checked():
    a = torch.tensor([[2.0, 2.0, 2.0, 2.0]])
    assert ciou(a, a).item() == pytest.approx(1.0, abs=1e-6)
    # same shape, shifted by 1 in x: IoU = 2/6, enclosing box 3x2 -> c^2 = 13, rho^2 = 1, v = 0
    b = torch.tensor([[3.0, 2.0, 2.0, 2.0]])
    assert ciou(a, b).item() == pytest.approx(2 / 6 - 1 / 13, abs=1e-6)
    # concentric, different aspect: IoU = 2/4 (1x2 inside 2x2), v = 4/pi^2 (atan(1) - atan(0.5))^2
    c = torch.tensor([[2.0, 2.0, 1.0, 2.0]])
    v = 4 / math.pi ** 2 * (math.atan(1.0) - math.atan(0.5)) ** 2
    iou = 0.5
    assert ciou(c, a).item() == pytest.approx(iou - v * v / (v - iou + 1), abs=1e-5)


def test_pairwise_iou():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0]])
    assert pairwise_iou(a, b).tolist() == [[pytest.approx(1 / 7), 0.0]]


def test_class_cost_equals_bce_and_is_finite_at_extremes():
    torch.manual_seed(0)
    raw = torch.randn(1, 6, 5 + 4) * 2
    classes = torch.tensor([[0, 3]])
    y = (raw[..., 5:].sigmoid() * raw[..., 4:5].sigmoid()).sqrt()
    onehot = F.one_hot(classes, 4).float()  # [1, 2, 4]
    naive = F.binary_cross_entropy(y[:, None].expand(1, 2, 6, 4), onehot[:, :, None].expand(1, 2, 6, 4),
                                   reduction="none").sum(-1)
    assert torch.allclose(class_cost(raw, classes), naive, rtol=1e-5, atol=1e-5)
    extreme = torch.tensor([[[0, 0, 0, 0, 50.0, 50, -50, 50, -50], [0, 0, 0, 0, -50, -50, 50, -50, 50]]])
    cost = class_cost(extreme, torch.tensor([[0, 1]]))
    assert torch.isfinite(cost).all()
    assert cost[0, 0, 0] < cost[0, 1, 0]  # class 0 confidently predicted at column 0


def test_gains_scaling_matches_the_official_recipe():
    assert scaled_gains(0.05, 0.7, 0.3, 3, 80, 640) == pytest.approx((0.05, 0.7, 0.3))
    assert scaled_gains(0.05, 0.7, 0.3, 4, 80, 1280) == pytest.approx((0.0375, 2.1, 0.225))
    assert scaled_gains(0.05, 1.0, 0.5, 3, 8, 320) == pytest.approx((0.05, 0.25, 0.05))


def test_balance_defaults():
    assert geometry_of("yolov7").strides == (8, 16, 32) and geometry_of("yolov7-w6").strides == (8, 16, 32, 64)
    assert YOLOv7Loss(80, geometry_of("yolov7")).balance == [4.0, 1.0, 0.4]
    assert YOLOv7Loss(80, geometry_of("yolov7-w6")).balance == [4.0, 1.0, 0.25, 0.06]


def test_components_and_aux_weight():
    geometry = geometry_of("yolov7-w6")
    out = random_outputs(2, (128, 128), geometry.strides, 3, aux=True, seed=0)
    targets = random_targets(2, (128, 128), [4, 2], 3, seed=1)
    res = YOLOv7Loss(3, geometry, Assigner(), aux_weight=0.25)(out, targets)
    c = res.components
    assert set(c) == {"lead/box", "lead/obj", "lead/cls", "aux/box", "aux/obj", "aux/cls", "total"}
    lead = c["lead/box"] + c["lead/obj"] + c["lead/cls"]
    aux = c["aux/box"] + c["aux/obj"] + c["aux/cls"]
    assert c["total"].item() == pytest.approx((lead + 0.25 * aux).item(), rel=1e-6)
    assert res.total.item() == pytest.approx(2 * c["total"].item(), rel=1e-6)  # x batch size
    assert all(v.item() > 0 for v in c.values())


def test_single_class_skips_the_class_loss():
    geometry = geometry_of("yolov7")
    out = random_outputs(1, (64, 64), geometry.strides, 1, aux=False, seed=0)
    res = YOLOv7Loss(1, geometry)(out, random_targets(1, (64, 64), [3], 1, seed=0))
    assert res.components["lead/cls"].item() == 0.0 and res.components["lead/box"].item() > 0


def test_label_smoothing_changes_only_the_class_loss():
    geometry = geometry_of("yolov7")
    out = random_outputs(1, (64, 64), geometry.strides, 4, aux=False, seed=0)
    t = random_targets(1, (64, 64), [3], 4, seed=0)
    a, b = YOLOv7Loss(4, geometry)(out, t), YOLOv7Loss(4, geometry, label_smoothing=0.1)(out, t)
    assert a.components["lead/box"] == b.components["lead/box"]
    assert a.components["lead/cls"] != b.components["lead/cls"]


def test_empty_batch_gives_objectness_only_and_gradients():
    geometry = geometry_of("yolov7-w6")
    out = random_outputs(2, (64, 64), geometry.strides, 3, aux=True, seed=0)
    res = YOLOv7Loss(3, geometry)(out, torch.zeros(0, 6))
    assert res.components["lead/box"].item() == 0 and res.components["lead/obj"].item() > 0
    res.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in out.lead + out.aux)


def test_gradients_finite_for_extreme_logits():
    geometry = geometry_of("yolov7")
    out = random_outputs(2, (96, 64), geometry.strides, 3, aux=False, seed=0, scale=40.0)
    res = YOLOv7Loss(3, geometry)(out, random_targets(2, (96, 64), [5, 5], 3, seed=0))
    res.total.backward()
    assert torch.isfinite(res.total) and all(torch.isfinite(p.grad).all() for p in out.lead)


def count_syncs(variant, aux, batch, per_image):
    geometry = geometry_of(variant)
    size = (128, 128)
    out = random_outputs(batch, size, geometry.strides, 80, aux=aux, seed=0)
    targets = random_targets(batch, size, [per_image] * batch, 80, seed=0)
    loss = YOLOv7Loss(80, geometry)
    with SyncCounter() as counter:
        loss(out, targets).total.backward()
    return counter


@pytest.mark.parametrize("variant, aux", [("yolov7", False), ("yolov7-w6", True)])
def test_synchronisations_do_not_grow_with_batch_or_boxes(variant, aux):
    # one for the size of the padded boxes, one per assignment for the packed candidates (lead, aux);
    # the official code makes ~480 at batch 8 x 7 boxes and ~2,600 at batch 32 x 30
    small, large = count_syncs(variant, aux, 8, 7), count_syncs(variant, aux, 32, 30)
    assert small.count == large.count == (3 if aux else 2)
    # no tensor built from Python numbers in the loss or the assigner: on a GPU each would be a host-to-device
    # copy that waits for the device (the candidate offsets, the grid size, the strides were: 7 and 15 a step)
    assert small.host_tensors == large.host_tensors == 0


@pytest.mark.cuda
@pytest.mark.parametrize("device", DEVICES)
def test_on_the_device(device):
    anchors, strides = anchors_of("yolov7")
    out = random_outputs(2, (64, 64), strides, 3, aux=False, seed=0)
    out = type(out)([p.detach().to(device).requires_grad_() for p in out.lead], None)
    t = random_targets(2, (64, 64), [3, 1], 3, seed=0)
    on_cpu, on_device = HeadGeometry.from_anchors(anchors, strides), HeadGeometry.from_anchors(anchors.to(device), strides)
    cpu = YOLOv7Loss(3, on_cpu)(type(out)([p.detach().cpu() for p in out.lead], None), t)
    got = YOLOv7Loss(3, on_device)(out, t.to(device))
    assert got.total.device.type == device
    assert got.total.item() == pytest.approx(cpu.total.item(), rel=1e-4)
