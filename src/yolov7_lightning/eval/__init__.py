"""Evaluation: NMS with the official test protocol, COCO bbox evaluation (pycocotools, or
torchmetrics as an alternative backend), the detectors (the one prediction path: ``TorchDetector``,
``OnnxDetector``), drawing, and prediction records. See docs/evaluation.md.

Typical use (one validation pass)::

    evaluator = make_evaluator("pycocotools", index=dm.dataset("val").index)  # dm: a YoloDataModule, set up
    for batch in dm.val_dataloader():
        dets = non_max_suppression(model(batch["images"]))      # nms.TEST: the official test protocol
        evaluator.update(dets, batch["meta"])
    evaluator.gather()                                          # DDP: all ranks; no-op otherwise
    metrics = evaluator.compute()                               # map, map50, ..., per_class, summary
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ..data.records import DatasetIndex
from .base import DetectionEvaluator, load_ground_truth
from .coco_eval import CocoEvaluator
from .detector import Detector, TorchDetector
from .draw import draw_detections
from .mapping import detections_to_original
from .nms import non_max_suppression
from .predictions import prediction_records, save_predictions
from .summary import COCO_METRICS, format_per_class, format_summary
from .torchmetrics_eval import TorchmetricsEvaluator
from ..errors import ConfigError

__all__ = [
    "COCO_METRICS", "CocoEvaluator", "DetectionEvaluator", "Detector", "TorchDetector", "TorchmetricsEvaluator",
    "detections_to_original",
    "draw_detections", "format_per_class", "format_summary", "ground_truth_of", "load_ground_truth",
    "make_evaluator", "non_max_suppression", "prediction_records", "save_predictions",
]

BACKENDS = {"pycocotools": CocoEvaluator, "torchmetrics": TorchmetricsEvaluator}


def make_evaluator(backend: str = "pycocotools", ground_truth: str | os.PathLike | Mapping | None = None,
                   category_ids: Sequence[int] | None = None, names: Sequence[str] | None = None,
                   index: DatasetIndex | None = None, **kwargs) -> DetectionEvaluator:
    """An evaluator of the chosen backend (``"pycocotools"`` or ``"torchmetrics"``).

    Give ``ground_truth`` (COCO JSON path or dict) with ``category_ids``, or a :class:`DatasetIndex`
    as ``index`` (its annotation file when it has one, else its COCO dict; its ``category_ids``).
    ``kwargs`` go to the backend (``coco_backend=`` for torchmetrics).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown evaluation backend {backend!r}; choose from {sorted(BACKENDS)}")
    if index is not None:
        ground_truth = ground_truth_of(index) if ground_truth is None else ground_truth
        category_ids = index.category_ids if category_ids is None else category_ids
    if ground_truth is None or category_ids is None:
        raise ValueError("make_evaluator needs ground_truth and category_ids, or index")
    return BACKENDS[backend](ground_truth, category_ids, names=names, **kwargs)


def ground_truth_of(index: DatasetIndex) -> str | os.PathLike | dict:
    """The ground truth to evaluate ``index`` against: the COCO JSON it was loaded from (the
    official protocol evaluates the dataset's own annotation file), else a COCO dict built from its
    records (YOLO-txt or generated data)."""
    from ..data.coco import index_to_coco

    if index.annotation_file is not None:
        return index.annotation_file
    return index_to_coco(index)
