"""Paste-in (YOLOv7's ``paste_in`` hyp): copy polygon-masked object crops from other images into
free rectangles of this one.

Hand-written (albumentations has no segment-driven copy-paste for detection). Instances are
sampled from randomly chosen loaded images (the official code samples them from 4-mosaics of
loaded images, which holds the same instances at the same scale). Rectangles at scales 0.75 (x2),
0.5 (x4), 0.25 (x4), 0.125 (x4), 0.0625 (x6) of the image, each skipped with probability 0.2, must
be > 20 px and overlap every existing box by IoA < 0.30; the pasted label is the placed rectangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .mosaic import Loader

SCALES = [0.75] * 2 + [0.5] * 4 + [0.25] * 4 + [0.125] * 4 + [0.0625] * 6


@dataclass
class Instance:
    """A masked object crop: img uint8 [h,w,3], mask bool [h,w], class id."""

    img: np.ndarray
    mask: np.ndarray
    cls: int


def collect_instances(load: Loader, n_images: int, rng: np.random.Generator, want: int = 30,
                      max_tries: int = 16) -> list[Instance]:
    """About half of the polygon instances of random images, until ``want`` or ``max_tries`` images."""
    out: list[Instance] = []
    for _ in range(max_tries):
        if len(out) >= want:
            break
        lab = load(int(rng.integers(n_images)))
        for box, cls, seg in zip(lab.boxes, lab.classes, lab.segments):
            if len(seg) < 3 or rng.random() < 0.5:
                continue
            x1, y1 = np.floor(box[:2]).astype(int)
            x2, y2 = np.ceil(box[2:]).astype(int)
            x1, y1 = max(x1, 0), max(y1, 0)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
            cv2.fillPoly(mask, [np.round(seg - (x1, y1)).astype(np.int32)], 1)
            out.append(Instance(lab.img[y1:y2, x1:x2].copy(), mask.astype(bool), int(cls)))
    return out


def _ioa(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over the area of each of ``boxes`` [n,4] with one ``box``."""
    iw = (np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])).clip(0)
    ih = (np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])).clip(0)
    return iw * ih / ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + 1e-7)


def paste_in(img: np.ndarray, boxes: np.ndarray, classes: np.ndarray, instances: list[Instance],
             rng: np.random.Generator):
    """Paste instances into ``img`` in place; returns (img, boxes [n',4], classes [n'])."""
    if not instances:
        return img, boxes, classes
    h, w = img.shape[:2]
    boxes, classes = list(boxes), list(classes)
    for s in SCALES:
        if rng.random() < 0.2:
            continue
        mh, mw = int(rng.integers(1, max(2, int(h * s) + 1))), int(rng.integers(1, max(2, int(w * s) + 1)))
        x1 = max(0, int(rng.integers(0, w)) - mw // 2)
        y1 = max(0, int(rng.integers(0, h)) - mh // 2)
        x2, y2 = min(w, x1 + mw), min(h, y1 + mh)
        if x2 <= x1 + 20 or y2 <= y1 + 20:
            continue
        rect = np.array([x1, y1, x2, y2], np.float32)
        if boxes and _ioa(rect, np.array(boxes)).max() >= 0.30:
            continue
        inst = instances[int(rng.integers(len(instances)))]
        ih, iw = inst.mask.shape
        r = min((y2 - y1) / ih, (x2 - x1) / iw)
        rw, rh = int(iw * r), int(ih * r)
        if rw <= 10 or rh <= 10:
            continue
        mask = cv2.resize(inst.mask.astype(np.uint8), (rw, rh), interpolation=cv2.INTER_NEAREST).astype(bool)
        if mask.sum() <= 60:
            continue
        crop = cv2.resize(inst.img, (rw, rh))
        img[y1:y1 + rh, x1:x1 + rw][mask] = crop[mask]
        boxes.append(np.array([x1, y1, x1 + rw, y1 + rh], np.float32))
        classes.append(inst.cls)
    return img, np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64)
