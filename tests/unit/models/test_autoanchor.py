"""Autoanchor: the official fit figures (checked against a direct transcription of the formulas),
new anchors only when the BPR is below 0.98 and rises, order by stride, seeded, explicit lists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolov7_lightning.models import build_model, get_arch
from yolov7_lightning.models.autoanchor import (
    apply_anchor_config,
    check_anchors,
    explicit_anchors,
    fit_metrics,
    label_wh,
    model_anchors,
)

TINY = np.array(get_arch("yolov7-tiny").anchors, np.float64).reshape(-1, 2)


def reference_metrics(wh, anchors, anchor_t):
    """The official metric as written: r = wh / k; x = min(r, 1/r) over both sides; best over anchors."""
    r = wh[:, None, :] / anchors[None]
    x = np.minimum(r, 1 / r).min(2)
    return float((x.max(1) > 1 / anchor_t).mean()), float((x > 1 / anchor_t).sum(1).mean())


def boxes(n, low, high, seed=0, per_image=10):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (n, 2)), np.repeat(np.arange(n // per_image + 1), per_image)[:n]


def coco_like(n, seed=0):
    rng = np.random.default_rng(seed)
    size, ratio = np.exp(rng.uniform(np.log(12), np.log(400), n)), np.exp(rng.uniform(np.log(0.4), np.log(2.5), n))
    return np.stack([size * ratio**0.5, size / ratio**0.5], 1), np.repeat(np.arange(n // 10 + 1), 10)[:n]


def test_metrics_equal_the_official_formula():
    wh, _ = coco_like(3000, seed=3)
    wh = wh * np.random.default_rng(1).uniform(0.2, 1.0, (len(wh), 1))
    for t in (4.0, 2.9):
        bpr, aat = fit_metrics(wh, TINY, t)
        want = reference_metrics(wh, TINY, t)
        assert bpr == pytest.approx(want[0], abs=1e-3) and aat == pytest.approx(want[1], abs=1e-3)
        assert 0.5 < bpr < 1.0  # the test data really exercises the threshold


def test_small_boxes_get_new_anchors_ordered_by_stride():
    wh, owner = boxes(4000, 2.0, 6.0)
    fit = check_anchors(wh, owner, TINY, 3, 320, anchor_t=4.0, seed=0)
    assert fit.bpr_before < 0.9 and fit.changed
    assert fit.bpr_after >= 0.98 and fit.anchors_per_target_after > fit.anchors_per_target_before
    new = np.array(fit.anchors_after).reshape(-1, 2)
    assert np.all(np.diff(new.prod(1)) >= 0)  # smallest anchors on the smallest stride
    assert new.min() >= 2.0 and new.max() <= 8.0
    assert fit_metrics(wh * 1.0, new, 4.0)[0] >= 0.98  # the figures describe the returned anchors
    again = check_anchors(wh, owner, TINY, 3, 320, anchor_t=4.0, seed=0)
    assert again.anchors_after == fit.anchors_after  # seeded


def test_coco_like_boxes_keep_the_anchors():
    wh, owner = coco_like(5000)
    anchors = np.array(get_arch("yolov7").anchors, np.float64).reshape(-1, 2)
    fit = check_anchors(wh, owner, anchors, 3, 640)
    assert fit.bpr_before >= 0.98 and not fit.changed
    assert np.allclose(np.array(fit.anchors_after).reshape(-1, 2), anchors)


def test_keep_mode_and_no_boxes_change_nothing():
    wh, owner = boxes(500, 2.0, 6.0)
    assert not check_anchors(wh, owner, TINY, 3, 320, mode="keep").changed
    assert not check_anchors(np.zeros((0, 2)), np.zeros(0, np.int64), TINY, 3, 320).changed


def test_apply_writes_both_buffers_and_explicit_lists():
    model = build_model("yolov7-tiny", num_classes=1)
    wh, owner = boxes(2000, 2.0, 6.0)
    fit = apply_anchor_config(model, "auto", wh, owner, 320)
    px = np.array(fit.anchors_after).reshape(-1, 2)
    assert np.allclose(model_anchors(model.detect), px, atol=1e-4)
    stride = torch.tensor([8.0, 16.0, 32.0]).view(-1, 1, 1)
    assert torch.allclose(model.detect.anchors, torch.tensor(px, dtype=torch.float32).view(3, 3, 2) / stride)
    reversed_list = [[116, 90, 156, 198, 373, 326], [30, 61, 62, 45, 59, 119], [10, 13, 16, 30, 33, 23]]
    assert np.allclose(explicit_anchors(reversed_list, 3, 3), TINY)  # official check_anchor_order: flipped
    fit = apply_anchor_config(model, reversed_list, wh, owner, 320)
    assert fit.mode == "explicit" and np.allclose(model_anchors(model.detect), TINY)
    with pytest.raises(ValueError, match="anchors: expected 3 levels of 6 numbers"):
        explicit_anchors([[10, 13, 16, 30]], 3, 3)
    with pytest.raises(ValueError, match="anchors: per-level mean areas"):
        explicit_anchors([[30, 61, 62, 45, 59, 119], [10, 13, 16, 30, 33, 23], [116, 90, 156, 198, 373, 326]], 3, 3)
    with pytest.raises(ValueError, match="valid: auto, keep"):
        apply_anchor_config(model, "evolve", wh, owner, 320)


def test_label_wh_scales_the_long_side_to_the_training_size():
    wh, owner = label_wh(np.array([[100, 200], [400, 400]]), [np.array([[0, 0, 20, 10]]), np.zeros((0, 4))], 320)
    assert np.allclose(wh, [[32, 16]]) and owner.tolist() == [0]
