"""Inputs of the export self-checks, all seeded: check images, and synthetic predictions for the NMS part.

- :func:`check_images`: scene-like images (a smooth background, a letterbox band of 114/255 on one
  side, a few flat-coloured rectangles, mild noise) rather than full-range per-pixel noise, which
  drives the scores of a barely trained model to 1.0 (every score then equal everywhere, so a score
  comparison says nothing). The report records how many objectness scores the images saturate.
- :func:`synthetic_predictions`: decoded predictions ``[B, N, 5 + nc]`` built to exercise NMS for any
  weights (even a model that detects nothing): clusters of overlapping boxes, each mostly of one
  class, whose IoUs spread over ``(0, 1)``, scores spread above ``conf_thres``, exact ties between classes and exact 1.0 scores.
  No pair of boxes has an IoU within ``1e-4`` of ``iou_thres`` (computed in float64 when the
  inputs are made), so the suppression decisions are defined to well beyond fp32 rounding and
  the graph and torchvision must agree exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SATURATED = 0.9999  # an objectness at or above this counts as saturated
ACTIVE = 2000       # rows of the synthetic predictions above conf_thres (the rest: objectness 0)
IOU_MARGIN = 1e-4


def check_images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """``n`` float32 images ``[n, 3, h, w]`` in [0, 1] (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 4, 4, generator=g) * 0.6 + 0.2, size=(h, w), mode="bilinear",
                      align_corners=False)
    for img in x:
        for _ in range(int(torch.randint(3, 9, (), generator=g))):
            y0, x0 = int(torch.randint(0, h, (), generator=g)), int(torch.randint(0, w, (), generator=g))
            bh = int(torch.randint(max(2, h // 16), max(3, h // 2), (), generator=g))
            bw = int(torch.randint(max(2, w // 16), max(3, w // 2), (), generator=g))
            img[:, y0:y0 + bh, x0:x0 + bw] = torch.rand(3, 1, 1, generator=g)
        band = int(torch.randint(0, max(1, h // 4), (), generator=g))  # letterbox padding at the top
        img[:, :band] = 114 / 255
    x += torch.randn(x.shape, generator=g) * 0.02
    return x.clamp_(0, 1)


def saturation(pred: torch.Tensor) -> float:
    """Fraction of the objectness scores of predictions ``[B, N, 5 + nc]`` at or above :data:`SATURATED`."""
    obj = pred[..., 4]
    return float((obj >= SATURATED).float().mean()) if obj.numel() else 0.0


def synthetic_predictions(batch: int, anchors: int, num_classes: int, h: int, w: int, conf_thres: float,
                          iou_thres: float, seed: int = 0, max_det: int = 300) -> torch.Tensor:
    """Decoded predictions ``[batch, anchors, 5 + num_classes]`` (cx, cy, w, h in pixels of an ``h x w``
    input, objectness, class scores) for the NMS check (see the module docstring). The boxes of a
    cluster mostly share a class, and there are about ``max_det / 10`` clusters, so that most
    suppressions happen and the survivors mostly stay under ``max_det``."""
    g = torch.Generator().manual_seed(seed)
    k = min(ACTIVE, anchors)
    pred = torch.zeros(batch, anchors, 5 + num_classes)
    pred[..., 5:] = torch.rand(batch, anchors, num_classes, generator=g)
    for b in range(batch):
        rows = torch.randperm(anchors, generator=g)[:k]
        boxes, cluster = _clustered_boxes(k, h, w, g, max(1, min(k // 8, max_det // 10)))
        obj = conf_thres + (1 - conf_thres) * torch.rand(k, generator=g) ** 0.5
        obj[torch.rand(k, generator=g) < 0.05] = 1.0
        cls = torch.rand(k, num_classes, generator=g) * 0.5  # the cluster's class scores higher
        main = torch.randint(0, num_classes, (int(cluster.max()) + 1,), generator=g)[cluster]
        cls[torch.arange(k), main] = 0.5 + 0.5 * torch.rand(k, generator=g)
        if num_classes > 1:  # exact ties between the two best classes of 5 % of the boxes, at 1.0 for some
            top = cls.topk(2, 1).indices
            tie = torch.rand(k, generator=g) < 0.05
            best = cls.gather(1, top[:, :1])
            best[torch.rand(k, 1, generator=g) < 0.3] = 1.0
            cls.scatter_(1, top[:, :1], best)
            cls[tie] = cls[tie].scatter(1, top[tie, 1:], best[tie])
        boxes = _away_from_threshold(boxes, iou_thres, h, w, g)
        pred[b, rows, :4] = boxes
        pred[b, rows, 4] = obj
        pred[b, rows, 5:] = cls
    return pred


def _clustered_boxes(k: int, h: int, w: int, g: torch.Generator, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` boxes cx, cy, w, h, jittered copies of ``m`` cluster boxes (sizes 4 px to the image side),
    and the cluster of each."""
    side = torch.tensor([w, h], dtype=torch.float32)
    wh = torch.exp(torch.empty(m, 2).uniform_(0, 1, generator=g) * torch.log(side / 4)) * 4
    xy = torch.rand(m, 2, generator=g) * side
    which = torch.randint(0, m, (k,), generator=g)
    spread = 0.02 + 0.28 * torch.rand(k, 1, generator=g) ** 2  # mostly tight: most IoUs high, some low
    jitter = torch.randn(k, 2, generator=g) * spread
    boxes = torch.cat((xy[which] + jitter * wh[which], wh[which] * torch.exp(torch.randn(k, 2, generator=g) * spread)), 1)
    return boxes, which


def _away_from_threshold(boxes: torch.Tensor, iou_thres: float, h: int, w: int, g: torch.Generator,
                         tries: int = 20) -> torch.Tensor:
    """Redraw the boxes that have an IoU within :data:`IOU_MARGIN` of ``iou_thres`` with any other box
    (float64; any pair, whatever the classes, so it holds for ``multi_label`` too)."""
    for _ in range(tries):
        near = _near_threshold(boxes, iou_thres)
        if not near.any():
            return boxes
        fresh, _ = _clustered_boxes(int(near.sum()), h, w, g, max(1, int(near.sum()) // 8))
        boxes = boxes.clone()
        boxes[near] = fresh
    raise RuntimeError("could not draw synthetic boxes away from the IoU threshold")  # pragma: no cover


def _near_threshold(boxes: torch.Tensor, iou_thres: float) -> torch.Tensor:
    from torchvision.ops import box_iou

    b = boxes.double()
    xyxy = torch.cat((b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2), 1)
    iou = box_iou(xyxy, xyxy)
    near = (iou - iou_thres).abs() < IOU_MARGIN
    near.fill_diagonal_(False)
    return near.any(1)
