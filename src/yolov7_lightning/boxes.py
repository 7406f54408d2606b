"""Box geometry for the data side, the assigner and the loss: xywh <-> xyxy, pairwise IoU, CIoU."""

from __future__ import annotations

import math

import numpy as np
import torch


def xywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` centre x, y, width, height -> corners x1, y1, x2, y2."""
    xy, wh = b[..., :2], b[..., 2:4] / 2
    return torch.cat((xy - wh, xy + wh), -1)


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4]`` corners x1, y1, x2, y2 -> centre x, y, width, height (float32 NumPy, the data side)."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Plain IoU of xyxy boxes ``a [..., N, 4]`` and ``b [..., M, 4]`` -> ``[..., N, M]``."""
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter)


def ciou(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of matching xywh boxes ``[..., 4]`` (elementwise) -> ``[...]``.

    IoU minus the normalised centre distance and the aspect-ratio term ``alpha * v``, with ``alpha``
    treated as a constant (no gradient), as in the CIoU paper and the official loss.
    """
    p1, p2 = pred[..., :2] - pred[..., 2:4] / 2, pred[..., :2] + pred[..., 2:4] / 2
    t1, t2 = target[..., :2] - target[..., 2:4] / 2, target[..., :2] + target[..., 2:4] / 2
    overlap = (torch.minimum(p2, t2) - torch.maximum(p1, t1)).clamp(min=0)
    inter = overlap[..., 0] * overlap[..., 1]  # not .prod(): its backward reads a zero count (a host sync)
    w1, h1 = p2[..., 0] - p1[..., 0], p2[..., 1] - p1[..., 1] + eps
    w2, h2 = t2[..., 0] - t1[..., 0], t2[..., 1] - t1[..., 1] + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    enclose = torch.maximum(p2, t2) - torch.minimum(p1, t1)
    c2 = enclose.pow(2).sum(-1) + eps
    rho2 = ((t1 + t2 - p1 - p2).pow(2).sum(-1)) / 4
    v = (4 / math.pi ** 2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)
