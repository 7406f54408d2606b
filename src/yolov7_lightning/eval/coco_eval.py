"""COCO bbox evaluation with pycocotools, as the official ``test.py --save-json`` does it:
``COCO(gt).loadRes(results)``, ``COCOeval(..., "bbox")`` restricted to the evaluated image ids,
then evaluate, accumulate, summarize (standard parameters: IoU 0.50:0.05:0.95, 101 recall points,
maxDets 1/10/100, COCO area ranges; crowd ground truth is ignored, never a miss)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .base import DetectionEvaluator
from .summary import COCO_METRICS, format_summary, stats_to_dict

__all__ = ["CocoEvaluator", "per_class_ap"]


def per_class_ap(precision: np.ndarray, k: int, iou_index: int | None = None) -> float:
    """AP of category index ``k`` from ``COCOeval.eval["precision"]`` (``[T, R, K, A, M]``), area
    "all", the largest maxDets; averaged over every IoU threshold, or only ``iou_index`` (0: IoU
    0.5). -1 when undefined (no ground truth of that category in the evaluated images)."""
    p = precision[:, :, k, 0, -1] if iou_index is None else precision[iou_index, :, k, 0, -1]
    p = p[p > -1]
    return float(p.mean()) if p.size else -1.0


class CocoEvaluator(DetectionEvaluator):
    """pycocotools backend. ``update`` / ``add`` / ``gather`` / ``reset`` / ``save_json``: see
    :class:`.base.DetectionEvaluator`.

    ``compute()`` returns the 12 COCO numbers as floats (``map`` = AP@.5:.95, ``map50``, ``map75``,
    ``map_small``, ``map_medium``, ``map_large``, ``mar_1``, ``mar_10``, ``mar_100``, ``mar_small``,
    ``mar_medium``, ``mar_large``; -1 = undefined, e.g. no small objects), ``per_class`` and
    ``per_class_map50`` (``{class name: AP}`` for every class of ``category_ids``, -1 = no ground
    truth), ``summary`` (the text pycocotools printed), ``num_images``, ``num_detections``.
    """

    backend = "pycocotools"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._coco_gt: COCO | None = None

    def _ground_truth(self) -> COCO:
        if self._coco_gt is None:
            coco = COCO()
            coco.dataset = self.gt
            with contextlib.redirect_stdout(io.StringIO()):
                coco.createIndex()
            self._coco_gt = coco
        return self._coco_gt

    def _detections(self, gt: COCO) -> COCO:
        results = self.results()
        if results:
            return gt.loadRes(results)
        empty = COCO()  # loadRes cannot take an empty list
        empty.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]),
                         "annotations": [], "info": {}}
        empty.createIndex()
        return empty

    def compute(self) -> dict:
        """Run COCOeval (bbox) on the evaluated images; see the class docstring for the keys."""
        image_ids = sorted(self._store)
        if not image_ids:
            stats = [-1.0] * len(COCO_METRICS)
            metrics = stats_to_dict(stats)
            per_class = {k: -1.0 for k in self.class_keys}
            return {**metrics, "per_class": per_class, "per_class_map50": dict(per_class),
                    "summary": format_summary(metrics), "num_images": 0, "num_detections": 0}

        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            gt = self._ground_truth()
            evaluator = COCOeval(gt, self._detections(gt), "bbox")
            evaluator.params.imgIds = image_ids
            evaluator.evaluate()
            evaluator.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            evaluator.summarize()

        precision = evaluator.eval["precision"]
        cat_index = {c: k for k, c in enumerate(evaluator.params.catIds)}
        per_class, per_class50 = {}, {}
        for key, cat in zip(self.class_keys, self.category_ids):
            k = cat_index.get(cat)
            per_class[key] = -1.0 if k is None else per_class_ap(precision, k)
            per_class50[key] = -1.0 if k is None else per_class_ap(precision, k, iou_index=0)
        return {**stats_to_dict(evaluator.stats), "per_class": per_class, "per_class_map50": per_class50,
                "summary": summary.getvalue().rstrip("\n"), "num_images": len(image_ids),
                "num_detections": self.num_detections}
