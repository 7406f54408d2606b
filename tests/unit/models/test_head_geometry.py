"""The head geometry: one decoder for the maps (inference, export), the assigner and the loss; it reads
the head's live anchor buffers and adds nothing to any state dict."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.unit.assign.test_assigner_parity import random_outputs, random_targets
from yolov7_lightning.assign import Assigner, find_candidates, pad_targets
from yolov7_lightning.loss import YOLOv7Loss
from yolov7_lightning.models import HeadGeometry, build_model
from yolov7_lightning.models.autoanchor import set_anchors


def candidates_of(geometry, outputs, targets, offset=1.0):
    grids = [(p.shape[2], p.shape[3]) for p in outputs]
    padded = pad_targets(targets, outputs[0].shape[0])
    return find_candidates(padded, grids, geometry.anchors, geometry.strides, offset, 4.0)


def test_geometry_reads_the_heads_live_buffers():
    model = build_model("yolov7-tiny", num_classes=3)
    keys = set(model.state_dict())
    geometry = model.detect.geometry
    loss = YOLOv7Loss(3, geometry)
    assert geometry.strides == (8, 16, 32) and (geometry.nl, geometry.na) == (3, 3)
    assert geometry.anchors is model.detect.anchors and geometry.anchor_grid is model.detect.anchor_grid
    set_anchors(model.detect, [[10.0 * (i + 1), 20.0 * (i + 1)] for i in range(9)])  # autoanchor, after construction
    assert loss.geometry.anchors[2, 2].tolist() == [90 / 32, 180 / 32]
    model.double()  # .to() replaces the buffers
    assert loss.geometry.anchors is model.detect.anchors and loss.geometry.anchors.dtype == torch.float64
    assert set(model.state_dict()) == keys and not loss.state_dict()  # no keys added anywhere
    twin = copy.deepcopy(model)
    assert twin.detect.geometry.anchors is twin.detect.anchors and twin.detect.geometry != geometry


def test_candidate_decode_is_the_map_decode_at_the_cells():
    model = build_model("yolov7-tiny", num_classes=3)
    geometry = model.detect.geometry
    outputs = random_outputs(2, (96, 64), geometry.strides, 3, aux=False, seed=0, scale=2.0).lead
    targets = random_targets(2, (96, 64), [6, 3], 3, seed=1)
    cands = candidates_of(geometry, outputs, targets)
    assert cands.valid.any()
    raw = cands.gather(outputs)
    b, c = cands.valid.nonzero(as_tuple=True)
    direct = torch.stack([outputs[lvl][i, a, j, k] for i, lvl, a, j, k in zip(
        b.tolist(), cands.level[b, c].tolist(), cands.anchor[b, c].tolist(), cands.gj[b, c].tolist(),
        cands.gi[b, c].tolist())])
    assert torch.equal(raw[b, c], direct)

    decoded = geometry.decode([p.detach() for p in outputs])  # [B, N, 5 + nc], levels one after the other
    sizes = [p[0].numel() // p.shape[-1] for p in outputs]  # A * H * W per image and level
    start = torch.tensor([0, *sizes[:-1]]).cumsum(0)
    index = start[cands.level] + cands.flat - torch.tensor(sizes)[cands.level] * torch.arange(2)[:, None]
    at_cells = decoded[torch.arange(2)[:, None], index, :4]
    boxes = geometry.decode_candidates(raw.detach(), cands)
    assert torch.allclose(boxes[b, c], at_cells[b, c], rtol=1e-6, atol=1e-4)
    cells = geometry.to_cells(boxes, cands)
    assert torch.allclose(geometry.to_pixels(cells, cands), boxes, rtol=1e-6, atol=1e-4)
    assert torch.allclose(cells, geometry.decode_cells(raw, cands), rtol=1e-6, atol=1e-5)
    assert ((cells[b, c, :2] > -0.5) & (cells[b, c, :2] < 1.5)).all()


def test_levels_of_the_candidates():
    geometry = build_model("yolov7-tiny", num_classes=3).detect.geometry
    outputs = random_outputs(1, (64, 64), geometry.strides, 3, aux=False, seed=0).lead
    cands = candidates_of(geometry, outputs, random_targets(1, (64, 64), [5], 3, seed=2))
    for lvl in range(cands.levels):
        on, flat = cands.on_level(lvl)
        assert torch.equal(on, cands.level == lvl)
        assert torch.equal(flat[on], cands.flat[on]) and not flat[~on].any()
        assert (flat < outputs[lvl][..., 0].numel()).all()


def test_assigner_and_loss_share_one_geometry():
    a, b = build_model("yolov7-tiny", num_classes=3), build_model("yolov7-tiny", num_classes=3)
    loss = YOLOv7Loss(3, a.detect.geometry, Assigner(strategy="lead_only"))
    assert loss.assigner.geometry == a.detect.geometry  # given by the loss to an assigner built without one
    same = Assigner(strategy="lead_only").with_geometry(a.detect.geometry)
    assert YOLOv7Loss(3, a.detect.geometry, same).assigner is same
    with pytest.raises(ValueError, match="the same head geometry"):
        YOLOv7Loss(3, a.detect.geometry, Assigner(strategy="lead_only").with_geometry(b.detect.geometry))
    heads = a.forward_heads(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="no head geometry"):
        Assigner(strategy="lead_only")(heads, torch.tensor([[0, 1, 32.0, 32.0, 20.0, 20.0]]))


def test_standalone_geometry():
    anchors = torch.tensor([[[1.25, 1.625], [2.0, 3.75], [4.125, 2.875]]])
    geometry = HeadGeometry.from_anchors(anchors, [8])
    assert geometry.anchors is anchors and geometry.strides == (8,)
    assert geometry.anchor_grid.shape == (1, 1, 3, 1, 1, 2)
    assert geometry.anchor_grid[0, 0, 2, 0, 0].tolist() == [33.0, 23.0]
