"""Test-time augmentation (official ``test.py --augment``, ``Model.forward_augment``).

Three passes: the image as it is, flipped left-right and scaled by 0.83, and scaled by 0.67
(bilinear resize, then padded bottom/right to a multiple of the max stride with 0.447, the
official ``scale_img``). Each pass's boxes are mapped back to the input frame (divided by the
scale, x mirrored for the flipped pass) and the three prediction sets are concatenated, so NMS
merges them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SCALES = (1.0, 0.83, 0.67)
FLIPS = (None, "lr", None)
PAD_VALUE = 0.447


def scale_image(images: torch.Tensor, ratio: float, stride: int) -> torch.Tensor:
    """Resize ``[B, 3, H, W]`` by ``ratio`` and pad to a multiple of ``stride`` (official ``scale_img``)."""
    if ratio == 1.0:
        return images
    h, w = images.shape[-2:]
    size = (int(h * ratio), int(w * ratio))
    out = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    ph, pw = (math.ceil(x * ratio / stride) * stride for x in (h, w))
    return F.pad(out, [0, pw - size[1], 0, ph - size[0]], value=PAD_VALUE)


@torch.no_grad()
def predict_augmented(predict, images: torch.Tensor, stride: int) -> torch.Tensor:
    """``predict(images) -> [B, N, 5 + nc]`` (cx, cy, w, h in input pixels) run on the three TTA
    views; returns ``[B, N1 + N2 + N3, 5 + nc]`` in the frame of ``images``."""
    width = images.shape[-1]
    out = []
    for ratio, flip in zip(SCALES, FLIPS):
        view = images.flip(-1) if flip == "lr" else images
        p = predict(scale_image(view, ratio, stride)).clone()
        p[..., :4] /= ratio
        if flip == "lr":
            p[..., 0] = width - p[..., 0]
        out.append(p)
    return torch.cat(out, 1)
