"""NMS with the official test protocol on hand-made predictions."""

from __future__ import annotations

import pytest
import torch
import torchvision

from tests.helpers import DEVICES
from yolov7_lightning.eval import nms as nms_module
from yolov7_lightning.eval import non_max_suppression


def pred(*rows) -> torch.Tensor:
    """One image ``[1, N, 5 + nc]`` from (cx, cy, w, h, obj, cls_0, ...) rows."""
    return torch.tensor(rows, dtype=torch.float32)[None]


def test_boxes_converted_to_corners_and_score_is_obj_times_cls():
    (out,) = non_max_suppression(pred([50, 40, 20, 10, 0.8, 0.5, 0.1]), multi_label=False)
    assert out.shape == (1, 6)
    torch.testing.assert_close(out[0], torch.tensor([40.0, 35.0, 60.0, 45.0, 0.4, 0.0]))


def test_overlapping_boxes_of_one_class_are_suppressed():
    # IoU of [0,0,100,100] and [10,0,110,100] = 90/110 = 0.82 > 0.65: the lower score goes
    p = pred([50, 50, 100, 100, 0.9, 0.9, 0.0], [60, 50, 100, 100, 0.8, 0.9, 0.0])
    (out,) = non_max_suppression(p, conf_thres=0.1)
    assert out.shape == (1, 6)
    assert out[0, 0].item() == 0.0 and out[0, 4].item() == pytest.approx(0.81)


def test_iou_below_threshold_keeps_both():
    # IoU of [0,0,100,100] and [50,0,150,100] = 50/150 = 0.33 < 0.65
    p = pred([50, 50, 100, 100, 0.9, 0.9, 0.0], [100, 50, 100, 100, 0.8, 0.9, 0.0])
    (out,) = non_max_suppression(p, conf_thres=0.1)
    assert len(out) == 2
    assert out[:, 4].tolist() == pytest.approx([0.81, 0.72])  # sorted by score


def test_different_classes_kept_class_aware_suppressed_agnostic():
    p = pred([50, 50, 100, 100, 0.9, 0.9, 0.0], [52, 50, 100, 100, 0.9, 0.0, 0.8])
    (aware,) = non_max_suppression(p, conf_thres=0.1, multi_label=False)
    assert sorted(aware[:, 5].tolist()) == [0.0, 1.0]
    (agnostic,) = non_max_suppression(p, conf_thres=0.1, multi_label=False, agnostic=True)
    assert agnostic[:, 5].tolist() == [0.0] and agnostic[0, 4].item() == pytest.approx(0.81)


def test_conf_threshold_on_objectness_and_on_score():
    p = pred(
        [50, 50, 10, 10, 0.05, 0.9, 0.0],  # obj below conf: dropped before scoring
        [150, 50, 10, 10, 0.5, 0.15, 0.0],  # obj ok, score 0.075 below conf: dropped
        [250, 50, 10, 10, 0.5, 0.5, 0.0],  # score 0.25: kept
    )
    (out,) = non_max_suppression(p, conf_thres=0.1)
    assert len(out) == 1 and out[0, 0].item() == 245.0


def test_multi_label_gives_one_row_per_class_above_conf():
    p = pred([50, 50, 20, 20, 1.0, 0.9, 0.8, 0.0005])
    (multi,) = non_max_suppression(p, conf_thres=0.001, multi_label=True)
    assert multi[:, 5].tolist() == [0.0, 1.0]  # class 2 (score 0.0005) below conf
    assert multi[:, 4].tolist() == pytest.approx([0.9, 0.8])
    torch.testing.assert_close(multi[0, :4], multi[1, :4])
    (single,) = non_max_suppression(p, conf_thres=0.001, multi_label=False)
    assert single[:, 5].tolist() == [0.0]


def test_max_det_keeps_the_highest_scores():
    rows = [[30 * i + 10, 10, 10, 10, 0.1 * (i + 1), 1.0] for i in range(8)]  # disjoint boxes
    (out,) = non_max_suppression(pred(*rows), conf_thres=0.01, max_det=3)
    assert out[:, 4].tolist() == pytest.approx([0.8, 0.7, 0.6])


def test_max_nms_caps_the_candidates_by_score():
    rows = [[30 * i + 10, 10, 10, 10, 0.1 * (i + 1), 1.0] for i in range(8)]
    (out,) = non_max_suppression(pred(*rows), conf_thres=0.01, max_nms=2)
    assert out[:, 4].tolist() == pytest.approx([0.8, 0.7])


def test_single_class_score_is_objectness():
    (out,) = non_max_suppression(pred([50, 50, 20, 20, 0.7, 0.2]), conf_thres=0.5)
    assert out.shape == (1, 6)
    assert out[0, 4].item() == pytest.approx(0.7) and out[0, 5].item() == 0.0


def test_class_filter():
    p = pred([50, 50, 20, 20, 1.0, 0.9, 0.0], [150, 50, 20, 20, 1.0, 0.0, 0.9])
    (out,) = non_max_suppression(p, conf_thres=0.1, classes=[1])
    assert out[:, 5].tolist() == [1.0]


def test_batches_with_no_boxes_and_no_images():
    out = non_max_suppression(torch.zeros(2, 0, 7))
    assert [o.shape for o in out] == [(0, 6), (0, 6)]
    assert non_max_suppression(torch.zeros(0, 10, 7)) == []
    below = torch.zeros(1, 4, 7)  # every objectness 0
    assert non_max_suppression(below)[0].shape == (0, 6)
    assert non_max_suppression(below, multi_label=False)[0].shape == (0, 6)


def test_images_are_independent_and_half_input_gives_float32():
    a = [50, 50, 100, 100, 0.9, 0.9, 0.0]
    p = torch.tensor([[a, a], [a, [250, 50, 100, 100, 0.9, 0.9, 0.0]]], dtype=torch.float16)
    out = non_max_suppression(p, conf_thres=0.1)
    assert [len(o) for o in out] == [1, 2]
    assert all(o.dtype == torch.float32 for o in out)


def test_rejects_a_bad_shape():
    with pytest.raises(ValueError, match=r"\[B, N, 5 \+ nc\]"):
        non_max_suppression(torch.zeros(4, 7))


@pytest.mark.cuda
@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_the_input_device(device):
    p = pred([50, 50, 100, 100, 0.9, 0.9, 0.0], [60, 50, 100, 100, 0.8, 0.9, 0.0]).to(device)
    (out,) = non_max_suppression(p, conf_thres=0.1, classes=[0])
    assert out.device.type == device and len(out) == 1


def test_negative_coordinates_do_not_mix_classes():
    # torchvision's batched_nms offsets class c by c * (max coordinate + 1) = 11 here, which puts
    # the class-1 box exactly on the class-0 box unless coordinates are made non-negative first
    p = pred([-75, -75, 50, 50, 0.9, 0.9, 0.0], [-86, -86, 50, 50, 0.8, 0.0, 0.9], [5, 5, 10, 10, 0.7, 0.9, 0.0])
    (out,) = non_max_suppression(p, conf_thres=0.1, multi_label=False)
    assert out[:, 5].tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(out[1, :4], torch.tensor([-111.0, -111.0, -61.0, -61.0]))


@pytest.mark.parametrize("seed, n, nc, spread", [
    (0, 20000, 5, 600.0),   # an untrained model's spread of boxes: the first prefix keeps max_det
    (1, 30000, 1, 40.0),    # boxes piled on a few spots: most are suppressed, the prefix grows
    (2, 6000, 80, 300.0),   # many classes
    (3, 1500, 3, 15.0),     # few candidates, heavy suppression: the prefix reaches all of them
])
def test_many_candidates_keep_what_torchvision_nms_of_all_keeps(seed, n, nc, spread):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n, 2, generator=g) * spread
    sizes = 4 + torch.rand(n, 2, generator=g) * 40
    boxes = torch.cat((centres - sizes / 2, centres + sizes / 2), 1)
    scores = torch.rand(n, generator=g)
    classes = torch.randint(0, nc, (n,), generator=g)
    for max_det in (300, 100):
        expected = torchvision.ops.boxes._batched_nms_vanilla(boxes, scores, classes, 0.65)[:max_det]
        got = nms_module._top_kept(boxes, scores, classes, 0.65, max_det)
        assert torch.equal(got, expected)


def test_many_candidates_through_the_protocol_match_batched_nms():
    g = torch.Generator().manual_seed(7)
    pred = torch.rand(1, 25000, 5 + 5, generator=g)
    pred[..., :2] *= 640
    pred[..., 2:4] = 8 + pred[..., 2:4] * 60
    (det,) = non_max_suppression(pred, conf_thres=0.001, iou_thres=0.65, multi_label=True, max_det=300)
    # the reference: the same candidates, one torchvision batched NMS over all of them
    x = pred[0]
    boxes = torch.cat((x[:, :2] - x[:, 2:4] / 2, x[:, :2] + x[:, 2:4] / 2), 1)
    scores = x[:, 5:] * x[:, 4:5]
    i, j = (scores > 0.001).nonzero(as_tuple=True)
    cand_scores = scores[i, j]
    top = cand_scores.topk(min(30000, len(cand_scores))).indices
    b, s, c = boxes[i][top], cand_scores[top], j[top]
    b = b - b.min().clamp(max=0)
    keep = torchvision.ops.batched_nms(b, s, c, 0.65)[:300]
    assert len(det) == 300
    assert torch.equal(det[:, 4], s[keep]) and torch.equal(det[:, 5], c[keep].float())
