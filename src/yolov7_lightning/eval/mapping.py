"""Detections in network-input pixels -> original image pixels, through the letterbox meta."""

from __future__ import annotations

import torch

from ..data.collate import ImageMeta

__all__ = ["detections_to_original"]


def detections_to_original(detections: torch.Tensor, meta: ImageMeta) -> torch.Tensor:
    """``[n, 6]`` (x1, y1, x2, y2 in input pixels, score, class) -> the same with boxes in original
    image pixels (``x0 = (x - pad_left) / ratio_w``, ``y0 = (y - pad_top) / ratio_h``), clipped to
    the original image, as the official ``scale_coords``. Same device and dtype; a new tensor.

    Raises ``ValueError`` for augmented samples (their meta cannot map boxes back).
    """
    if detections.ndim != 2 or detections.shape[-1] != 6:
        raise ValueError(f"detections must be [n, 6], got {tuple(detections.shape)}")
    out = detections.clone()
    out[:, :4] = meta.to_original(detections[:, :4])
    return out
