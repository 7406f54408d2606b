"""Ground truth in a padded per-image layout, built without host synchronisation per box."""

from __future__ import annotations

from typing import NamedTuple

import torch


class PaddedTargets(NamedTuple):
    """``boxes [B, G, 4]`` cx, cy, w, h in input pixels, ``classes [B, G]`` long, ``valid [B, G]``.

    ``G`` is the largest number of boxes in one image; image ``b``'s boxes keep their input order.
    """

    boxes: torch.Tensor
    classes: torch.Tensor
    valid: torch.Tensor


def pad_targets(targets: torch.Tensor, batch_size: int) -> PaddedTargets:
    """``targets [N, 6]`` (image index, class, cx, cy, w, h) -> :class:`PaddedTargets`.

    One host synchronisation (the size ``G``), whatever the batch size and box count.
    """
    device = targets.device
    img = targets[:, 0].long()
    counts = torch.zeros(batch_size, dtype=torch.long, device=device).index_add_(0, img, torch.ones_like(img))
    g = int(counts.max()) if targets.shape[0] else 0  # the one synchronisation
    order = torch.argsort(img, stable=True)
    img_sorted = img[order]
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(img.shape[0], device=device) - first[img_sorted]
    boxes = torch.zeros(batch_size, g, 4, dtype=targets.dtype, device=device)
    classes = torch.zeros(batch_size, g, dtype=torch.long, device=device)
    boxes[img_sorted, slot] = targets[order, 2:6]
    classes[img_sorted, slot] = targets[order, 1].long()
    valid = torch.arange(g, device=device)[None, :] < counts[:, None]  # image b's first counts[b] slots
    return PaddedTargets(boxes, classes, valid)
