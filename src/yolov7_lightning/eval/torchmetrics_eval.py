"""The same evaluator API backed by torchmetrics' ``MeanAveragePrecision`` (iou_type bbox, macro
average over classes). Its COCO backend is ``faster_coco_eval`` when installed, else pycocotools;
both follow the COCO protocol, so the numbers agree with :class:`.coco_eval.CocoEvaluator`.

Results are stored and gathered exactly as in the pycocotools backend (one store, first result per
image id wins); the metric object is built and fed only in ``compute()``, with the ground truth of
the evaluated image ids (boxes, category ids, ``iscrowd`` and ``area`` from the annotation file).
"""

from __future__ import annotations

import importlib.util
from collections import defaultdict

import numpy as np
import torch

from .base import DetectionEvaluator
from .coco_eval import per_class_ap
from .summary import COCO_METRICS, format_summary

__all__ = ["TorchmetricsEvaluator", "default_coco_backend"]

# COCOeval's own float64 thresholds. torchmetrics' defaults come from float32 ``torch.linspace``
# (0.6 becomes 0.6000000238...), which moves a recall that lands exactly on a threshold (3/5 = 0.6)
# to the next point and changes AP by 1/101 of a class's AP.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10).tolist()
REC_THRESHOLDS = np.linspace(0.0, 1.0, 101).tolist()
_TM_KEYS = {"map50": "map_50", "map75": "map_75"}  # our name -> torchmetrics' name, where they differ


def default_coco_backend() -> str:
    """``"faster_coco_eval"`` if that package is installed, else ``"pycocotools"``."""
    return "faster_coco_eval" if importlib.util.find_spec("faster_coco_eval") else "pycocotools"


class TorchmetricsEvaluator(DetectionEvaluator):
    """torchmetrics backend; ``compute()`` returns the same keys as ``CocoEvaluator.compute()``
    (``summary`` is formatted from the 12 numbers, in pycocotools' layout).

    Args: as :class:`.base.DetectionEvaluator`, plus ``coco_backend`` (``"pycocotools"``,
    ``"faster_coco_eval"`` or ``None`` = :func:`default_coco_backend`).
    """

    backend = "torchmetrics"

    def __init__(self, *args, coco_backend: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.coco_backend = coco_backend or default_coco_backend()
        self._gt_by_image: dict[int, list[dict]] | None = None

    def _target(self, image_id: int) -> dict[str, torch.Tensor]:
        if self._gt_by_image is None:
            self._gt_by_image = defaultdict(list)
            for ann in self.gt["annotations"]:
                self._gt_by_image[int(ann["image_id"])].append(ann)
        anns = self._gt_by_image.get(image_id, [])
        return {
            "boxes": torch.tensor([a["bbox"] for a in anns], dtype=torch.float64).reshape(-1, 4).float(),
            "labels": torch.tensor([int(a["category_id"]) for a in anns], dtype=torch.int64),
            "iscrowd": torch.tensor([int(a.get("iscrowd", 0)) for a in anns], dtype=torch.int64),
            "area": torch.tensor([float(a["area"]) for a in anns], dtype=torch.float32),
        }

    def _pred(self, image_id: int) -> dict[str, torch.Tensor]:
        rows = torch.from_numpy(self._store[image_id])
        return {"boxes": rows[:, :4].float(), "scores": rows[:, 4].float(), "labels": rows[:, 5].long()}

    def compute(self) -> dict:
        """Run MeanAveragePrecision on the evaluated images; keys as ``CocoEvaluator.compute()``."""
        from torchmetrics.detection import MeanAveragePrecision

        image_ids = sorted(self._store)
        per_class = {k: -1.0 for k in self.class_keys}
        per_class50 = dict(per_class)
        if not image_ids:
            metrics = {k: -1.0 for k in COCO_METRICS}
        else:
            metric = MeanAveragePrecision(box_format="xywh", iou_type="bbox", average="macro",
                                          iou_thresholds=IOU_THRESHOLDS, rec_thresholds=REC_THRESHOLDS,
                                          extended_summary=True, backend=self.coco_backend)
            metric.warn_on_many_detections = False
            metric.update([self._pred(i) for i in image_ids], [self._target(i) for i in image_ids])
            out = metric.compute()
            metrics = {k: float(out[_TM_KEYS.get(k, k)]) for k in COCO_METRICS}
            precision = out.get("precision")
            classes = out["classes"].reshape(-1).tolist()
            if isinstance(precision, torch.Tensor) and precision.ndim == 5:
                precision = precision.numpy()
                index = {int(c): k for k, c in enumerate(classes)}
                for key, cat in zip(self.class_keys, self.category_ids):
                    if cat in index:
                        per_class[key] = per_class_ap(precision, index[cat])
                        per_class50[key] = per_class_ap(precision, index[cat], iou_index=0)
        return {**metrics, "per_class": per_class, "per_class_map50": per_class50,
                "summary": format_summary(metrics), "num_images": len(image_ids),
                "num_detections": self.num_detections}

