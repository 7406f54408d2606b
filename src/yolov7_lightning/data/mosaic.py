"""Mosaic of 4 and of 9 images, and mixup.

Hand-written: ``albumentations.Mosaic`` rescales every image to a fixed cell shape around a
centred crop window, while YOLOv7 keeps each image at its loaded scale and aspect, places the
four around a random centre of a 2Hx2W canvas (cells of unequal size) or nine in a ring around a
centre image before a random 2Hx2W crop. The canvas then goes through
:func:`geometry.random_perspective` into HxW.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .records import Labelled

FILL = 114
Loader = Callable[[int], Labelled]


def _clip_labels(lab: Labelled, h: int, w: int) -> Labelled:
    boxes = lab.boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    segs = [np.stack([s[:, 0].clip(0, w), s[:, 1].clip(0, h)], 1) if len(s) else s for s in lab.segments]
    return Labelled(lab.img, boxes, lab.classes, segs)


def _concat(img: np.ndarray, parts: list[Labelled]) -> Labelled:
    return Labelled(
        img,
        np.concatenate([p.boxes for p in parts]).reshape(-1, 4).astype(np.float32),
        np.concatenate([p.classes for p in parts]).astype(np.int64),
        [s for p in parts for s in p.segments],
    )


def mosaic4(load: Loader, indices: list[int], rng: np.random.Generator, out_hw: tuple[int, int]) -> Labelled:
    """Four images (each fitting in ``out_hw``) around a random centre of a [2H, 2W] canvas."""
    H, W = out_hw
    canvas = np.full((2 * H, 2 * W, 3), FILL, np.uint8)
    yc, xc = int(rng.uniform(H / 2, 1.5 * H)), int(rng.uniform(W / 2, 1.5 * W))
    parts = []
    for k, idx in enumerate(indices[:4]):
        lab = load(idx)
        h, w = lab.img.shape[:2]
        if k == 0:  # top-left: the image's bottom-right corner touches the centre
            a = (max(xc - w, 0), max(yc - h, 0), xc, yc)
        elif k == 1:  # top-right
            a = (xc, max(yc - h, 0), min(xc + w, 2 * W), yc)
        elif k == 2:  # bottom-left
            a = (max(xc - w, 0), yc, xc, min(2 * H, yc + h))
        else:  # bottom-right
            a = (xc, yc, min(xc + w, 2 * W), min(2 * H, yc + h))
        aw, ah = a[2] - a[0], a[3] - a[1]
        bx = w - aw if k in (0, 2) else 0  # the part of the image that is visible
        by = h - ah if k in (0, 1) else 0
        canvas[a[1]:a[3], a[0]:a[2]] = lab.img[by:by + ah, bx:bx + aw]
        parts.append(lab.shifted(a[0] - bx, a[1] - by))
    return _drop_outside(_clip_labels(_concat(canvas, parts), 2 * H, 2 * W))


def mosaic9(load: Loader, indices: list[int], rng: np.random.Generator, out_hw: tuple[int, int]) -> Labelled:
    """Nine images in a ring around a centre image on a [3H, 3W] canvas, then a random [2H, 2W] crop."""
    H, W = out_hw
    canvas = np.full((3 * H, 3 * W, 3), FILL, np.uint8)
    parts = []
    h0 = w0 = hp = wp = 0
    for k, idx in enumerate(indices[:9]):
        lab = load(idx)
        h, w = lab.img.shape[:2]
        # top-left corner of tile k (centre at (H, W)); each ring tile leans on its neighbour
        x, y = {
            0: (W, H), 1: (W, H - h), 2: (W + wp, H - h), 3: (W + w0, H), 4: (W + w0, H + hp),
            5: (W + w0 - w, H + h0), 6: (W + w0 - wp - w, H + h0), 7: (W - w, H + h0 - h),
            8: (W - w, H + h0 - hp - h),
        }[k]
        if k == 0:
            h0, w0 = h, w
        x1, y1 = max(x, 0), max(y, 0)
        x2, y2 = min(x + w, 3 * W), min(y + h, 3 * H)
        if x2 > x1 and y2 > y1:
            canvas[y1:y2, x1:x2] = lab.img[y1 - y:y2 - y, x1 - x:x2 - x]
        parts.append(lab.shifted(x, y))
        hp, wp = h, w
    yc, xc = int(rng.uniform(0, H)), int(rng.uniform(0, W))
    crop = canvas[yc:yc + 2 * H, xc:xc + 2 * W]
    merged = _concat(crop, parts).shifted(-xc, -yc)
    merged = Labelled(crop, merged.boxes, merged.classes, merged.segments)
    return _drop_outside(_clip_labels(merged, 2 * H, 2 * W))


def _drop_outside(lab: Labelled) -> Labelled:
    keep = (lab.boxes[:, 2] > lab.boxes[:, 0]) & (lab.boxes[:, 3] > lab.boxes[:, 1])
    return Labelled(lab.img, lab.boxes[keep], lab.classes[keep], [s for s, k in zip(lab.segments, keep) if k])


def mixup(a: Labelled, b: Labelled, rng: np.random.Generator, alpha: float = 8.0) -> Labelled:
    """Blend two same-size images with ``r ~ Beta(8, 8)`` and keep both label sets."""
    r = rng.beta(alpha, alpha)
    img = (a.img.astype(np.float32) * r + b.img.astype(np.float32) * (1 - r)).astype(np.uint8)
    return _concat(img, [a, b])
