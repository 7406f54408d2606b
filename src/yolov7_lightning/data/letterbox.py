"""Letterbox: scale to fit a (height, width) canvas keeping the aspect ratio, pad centred with 114.

The resize and the padding are albumentations transforms (``Resize`` + ``PadIfNeeded`` with
``position='center'``); this module owns the bookkeeping: the exact per-axis ratio and the
(top, left) pad, so boxes map into the network input and back without error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import albumentations as A
import cv2
import numpy as np

FILL = 114


@dataclass(frozen=True)
class Letterbox:
    """How an original image of ``orig_hw`` became the network input of ``input_hw``.

    ``x_input = x_orig * ratio_hw[1] + pad_tl[1]``; ``y_input = y_orig * ratio_hw[0] + pad_tl[0]``.
    """

    orig_hw: tuple[int, int]
    input_hw: tuple[int, int]
    ratio_hw: tuple[float, float]
    pad_tl: tuple[int, int]

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy [n, 4] in original pixels -> network-input pixels."""
        scale = np.array([self.ratio_hw[1], self.ratio_hw[0]] * 2, np.float64)
        shift = np.array([self.pad_tl[1], self.pad_tl[0]] * 2, np.float64)
        return (np.asarray(boxes, np.float64) * scale + shift).astype(np.float32)

    def to_original(self, boxes):
        """xyxy [n, 4] (numpy or torch) in network-input pixels -> original pixels, clipped."""
        sx, sy = self.ratio_hw[1], self.ratio_hw[0]
        out = boxes.clone() if hasattr(boxes, "clone") else np.array(boxes, np.float64, copy=True)
        out[..., [0, 2]] = ((out[..., [0, 2]] - self.pad_tl[1]) / sx).clip(0, self.orig_hw[1])
        out[..., [1, 3]] = ((out[..., [1, 3]] - self.pad_tl[0]) / sy).clip(0, self.orig_hw[0])
        return out


@lru_cache(maxsize=256)
def _pipeline(new_h: int, new_w: int, out_h: int, out_w: int, interpolation: int) -> A.Compose:
    return A.Compose([
        A.Resize(new_h, new_w, interpolation=interpolation, p=1),
        A.PadIfNeeded(out_h, out_w, position="center", border_mode=cv2.BORDER_CONSTANT, fill=FILL, p=1),
    ])


def letterbox(img: np.ndarray, out_hw: tuple[int, int], orig_hw: tuple[int, int] | None = None,
              scaleup: bool = True) -> tuple[np.ndarray, Letterbox]:
    """uint8 [h, w, 3] -> uint8 [out_h, out_w, 3] and its :class:`Letterbox`.

    ``orig_hw`` is the size of the original file when ``img`` was already resized at load time
    (the ratio then refers to the original). ``scaleup=False`` never enlarges (validation).
    """
    h, w = img.shape[:2]
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    r = min(out_h / h, out_w / w)
    if not scaleup:
        r = min(r, 1.0)
    new_h, new_w = min(out_h, max(1, round(h * r))), min(out_w, max(1, round(w * r)))
    if (new_h, new_w, out_h, out_w) != (h, w, h, w):
        img = _pipeline(new_h, new_w, out_h, out_w, cv2.INTER_LINEAR)(image=img)["image"]
    top, left = (out_h - new_h) // 2, (out_w - new_w) // 2  # PadIfNeeded 'center' convention
    oh, ow = orig_hw or (h, w)
    return img, Letterbox((int(oh), int(ow)), (out_h, out_w), (new_h / oh, new_w / ow), (top, left))
