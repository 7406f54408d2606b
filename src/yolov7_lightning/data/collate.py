"""The Batch contract (docs/data.md) and the collate function.

``images``  float32 [B, 3, H, W] in [0, 1] (uint8 when the DataModule defers the conversion to
            the device with ``transfer_uint8``; Lightning then sees float32 after transfer).
``targets`` float32 [N, 6] = (image index in batch, class, cx, cy, w, h), pixels of the network input.
``meta``    list of B :class:`ImageMeta`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import torch

from .letterbox import Letterbox


@dataclass(frozen=True)
class ImageMeta:
    """Per image: dataset ``image_id``, file ``path``, original ``orig_hw``, network ``input_hw``;
    for unaugmented samples ``ratio_hw``/``pad_tl`` map input boxes back (``x0 = (x - pad_left) /
    ratio_w``, see :class:`letterbox.Letterbox`); ``None`` for augmented training samples."""

    image_id: int
    path: Path
    orig_hw: tuple[int, int]
    input_hw: tuple[int, int]
    ratio_hw: tuple[float, float] | None = None
    pad_tl: tuple[int, int] | None = None

    def to_original(self, boxes_xyxy: torch.Tensor) -> torch.Tensor:
        """xyxy [n, 4] input pixels -> original image pixels (clipped); unaugmented samples only."""
        if self.ratio_hw is None or self.pad_tl is None:
            raise ValueError(f"{self.path}: augmented sample, boxes cannot be mapped back")
        return Letterbox(self.orig_hw, self.input_hw, self.ratio_hw, self.pad_tl).to_original(boxes_xyxy)


class Sample(TypedDict):
    """One dataset item: image uint8 [3,H,W]; labels float32 [n,5] (class, cx, cy, w, h) px."""

    image: torch.Tensor
    labels: torch.Tensor
    meta: ImageMeta


class Batch(TypedDict):
    images: torch.Tensor
    targets: torch.Tensor
    meta: list[ImageMeta]


def collate(samples: list[Sample], float_images: bool = True) -> Batch:
    """Stack same-size images and concatenate labels with their batch index in column 0."""
    images = torch.stack([s["image"] for s in samples])
    if float_images:
        images = images.float().div_(255)
    targets = [torch.cat([torch.full((len(s["labels"]), 1), float(i)), s["labels"]], 1) for i, s in enumerate(samples)]
    return Batch(images=images, targets=torch.cat(targets).reshape(-1, 6), meta=[s["meta"] for s in samples])


def collate_uint8(samples: list[Sample]) -> Batch:
    return collate(samples, float_images=False)
