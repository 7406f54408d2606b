"""Image weights (official ``--image-weights``): sample training images by class rarity.

Each epoch, as the official ``train.py``: class weights = normalised inverse class frequency of the
training labels (a class without labels counts as 1) x ``(1 - mAP_c)**2 / nc``, with ``mAP_c`` the
per-class mAP@.5:.95 of the last validation (0 before the first; a class absent from the
validation split takes the overall mAP); an image's weight is the sum of the weights of its boxes
(an image without boxes is never drawn); the epoch draws ``n`` images with replacement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .records import DatasetIndex


def class_counts(index: DatasetIndex, nc: int) -> np.ndarray:
    """``[n_images, nc]`` number of boxes of each class per image."""
    out = np.zeros((len(index), nc))
    for i, r in enumerate(index.records):
        out[i] = np.bincount(np.asarray(r.classes, np.int64), minlength=nc)[:nc]
    return out


def class_weights(counts: np.ndarray) -> np.ndarray:
    """Normalised inverse frequency of every class (official ``labels_to_class_weights``)."""
    total = counts.sum(0)
    total[total == 0] = 1
    w = 1 / total
    return w / w.sum()


def epoch_image_weights(counts: np.ndarray, maps: Sequence[float] | None = None) -> np.ndarray:
    """Per-image sampling weights for one epoch from the last per-class mAPs (``None``: zeros)."""
    nc = counts.shape[1]
    maps = np.zeros(nc) if maps is None else np.asarray(maps, np.float64)
    if maps.shape != (nc,):
        raise ValueError(f"image weights: {maps.shape[0]} per-class mAPs for {nc} classes")
    cw = class_weights(counts) * (1 - maps) ** 2 / nc
    return counts @ cw
