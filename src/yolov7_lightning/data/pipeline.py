"""The per-sample recipes on numpy images: training (the YOLOv7 augmentation order) and evaluation.

Training, in the official order: mosaic 4/9 (probability ``mosaic``; 9 with ``mosaic9``) warped by
:func:`random_perspective` from [2H,2W] to [H,W], mixup with a second mosaic; otherwise letterbox
+ warp (box mode). Then HSV gains, paste-in, vertical/horizontal flips (albumentations).
Evaluation: letterbox to the (rectangular) batch shape, never enlarging, no augmentation.
All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import albumentations as A
import numpy as np

from .color import augment_hsv
from .config import AugmentConfig
from .geometry import WarpParams, random_perspective
from .image_io import ImageCache, decode_image, resize_to_fit
from .letterbox import letterbox
from .mosaic import mixup, mosaic4, mosaic9
from .paste_in import collect_instances, paste_in
from .records import DatasetIndex, Labelled

log = logging.getLogger(__name__)


@lru_cache(maxsize=2)
def _flip(vertical: bool) -> A.Compose:
    t = A.VerticalFlip(p=1) if vertical else A.HorizontalFlip(p=1)
    return A.Compose([t], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["classes"]))


class Pipeline:
    """Loads records of ``index`` at ``img_size`` (fits in [H, W]) and builds samples.

    Outputs are (img uint8 [h,w,3] RGB, boxes xyxy px float32 [n,4], classes int64 [n]).
    """

    def __init__(self, index: DatasetIndex, img_size: tuple[int, int], augment: AugmentConfig | None,
                 cache: ImageCache | None = None) -> None:
        self.index = index
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.aug = augment if augment is not None and augment.enabled else None
        self.cache = cache
        self.warp = WarpParams(*(getattr(self.aug, k) for k in ("degrees", "translate", "scale", "shear",
                                                                "perspective"))) if self.aug else None
        self.paste_in_possible = bool(self.aug and self.aug.paste_in > 0 and index.has_segments)
        if self.aug and self.aug.paste_in > 0 and not index.has_segments:
            log.warning("paste_in=%.2f has no effect: the dataset has no polygon segments", self.aug.paste_in)

    # ---- loading -------------------------------------------------------------------------------
    def load_image(self, i: int) -> np.ndarray:
        """Decoded image ``i`` resized to fit ``img_size`` (from the cache when present)."""
        img = self.cache.get(i) if self.cache is not None else None
        if img is None:
            img = resize_to_fit(decode_image(self.index.records[i].path), self.img_size, self.aug is not None)
        return img

    def load(self, i: int) -> Labelled:
        rec = self.index.records[i]
        img = self.load_image(i)
        sy, sx = img.shape[0] / rec.height, img.shape[1] / rec.width
        scale = np.array([sx, sy], np.float32)
        return Labelled(img, rec.boxes * np.tile(scale, 2), rec.classes.copy(),
                        [s * scale for s in rec.segments])

    # ---- training ------------------------------------------------------------------------------
    def _mosaic(self, i: int, rng: np.random.Generator) -> Labelled:
        n = len(self.index)
        nine = rng.random() < self.aug.mosaic9
        others = rng.integers(0, n, 8 if nine else 3).tolist()
        lab = (mosaic9 if nine else mosaic4)(self.load, [i, *others], rng, self.img_size)
        img, boxes, classes = random_perspective(lab.img, lab.boxes, lab.classes, lab.segments, rng, self.warp,
                                                 self.img_size)
        return Labelled(img, boxes, classes, [])

    def train_sample(self, i: int, rng: np.random.Generator, mosaic_allowed: bool = True,
                     shape_hw: tuple[int, int] | None = None):
        """``shape_hw``: the batch's input shape without mosaic (rectangular training); default ``img_size``."""
        aug = self.aug
        shape_hw = tuple(shape_hw or self.img_size)
        if aug is None:
            lab = self.load(i)
            img, lb = letterbox(lab.img, shape_hw, (lab.img.shape[0], lab.img.shape[1]), scaleup=True)
            return img, lb.to_input(lab.boxes), lab.classes
        if mosaic_allowed and rng.random() < aug.mosaic:
            lab = self._mosaic(i, rng)
            if rng.random() < aug.mixup:
                lab = mixup(lab, self._mosaic(int(rng.integers(len(self.index))), rng), rng)
            img, boxes, classes = lab.img, lab.boxes, lab.classes
        else:
            lab = self.load(i)
            img, lb = letterbox(lab.img, shape_hw, (lab.img.shape[0], lab.img.shape[1]), scaleup=True)
            img, boxes, classes = random_perspective(img, lb.to_input(lab.boxes), lab.classes, [], rng, self.warp)
        img = augment_hsv(img, rng, aug.hsv_h, aug.hsv_s, aug.hsv_v)
        if self.paste_in_possible and rng.random() < aug.paste_in:
            instances = collect_instances(self.load, len(self.index), rng)
            img, boxes, classes = paste_in(img.copy(), boxes, classes, instances, rng)
        for vertical, p in ((True, aug.flipud), (False, aug.fliplr)):
            if rng.random() < p:
                out = _flip(vertical)(image=img, bboxes=boxes.reshape(-1, 4), classes=classes)
                img = out["image"]
                boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
                classes = np.asarray(out["classes"], np.int64).reshape(-1)
        return np.ascontiguousarray(img), boxes.astype(np.float32), classes.astype(np.int64)

    # ---- evaluation ----------------------------------------------------------------------------
    def eval_sample(self, i: int, shape_hw: tuple[int, int]):
        """(img [H,W,3], boxes in input px, classes, :class:`Letterbox`) for batch shape ``shape_hw``."""
        rec = self.index.records[i]
        img, lb = letterbox(self.load_image(i), shape_hw, (rec.height, rec.width), scaleup=False)
        return img, lb.to_input(rec.boxes), rec.classes.copy(), lb
