"""What every evaluation backend shares: the ground truth, the per-image result store, DDP gathering
and the COCO results JSON. Backends (:mod:`.coco_eval`, :mod:`.torchmetrics_eval`) add ``compute``.

The store holds, per evaluated image id, a float64 ``[n, 6]`` array ``(x, y, w, h, score,
category_id)`` in *original* image pixels, boxes rounded to 3 decimals and scores to 5 (what the
official code writes to its results JSON and then evaluates). The first result seen for an image
id wins, so the duplicates that a ``DistributedSampler`` pads the last batch with never count twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..atomic import atomic_write_json
from ..data.coco import read_json
from ..data.collate import ImageMeta
from .mapping import detections_to_original

__all__ = ["DetectionEvaluator", "load_ground_truth"]

BOX_DECIMALS, SCORE_DECIMALS = 3, 5


def load_ground_truth(ground_truth: str | os.PathLike | Mapping) -> dict:
    """A COCO instances JSON path or dict -> a COCO dict safe to hand to pycocotools.

    The caller's dict is not modified: annotations are copied, with ``area`` (box area) and
    ``iscrowd`` (0) filled in when missing. A bad file raises ``DatasetError`` naming it.
    """
    data = read_json(Path(ground_truth)) if isinstance(ground_truth, (str, os.PathLike)) else dict(ground_truth)
    anns = []
    for ann in data.get("annotations", []):
        ann = dict(ann)
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
        anns.append(ann)
    data["annotations"] = anns
    data.setdefault("categories", [])
    data.setdefault("info", {})
    return data


class DetectionEvaluator:
    """Accumulates detections of a validation/test pass; ``compute()`` is the backend's.

    Args:
        ground_truth: path to a COCO instances JSON, or a COCO dict (e.g. ``index_to_coco(index)``).
        category_ids: ``category_ids[c]`` = ground-truth category id of contiguous class ``c``.
        names: class names (``names[c]``) for ``per_class``; default: the ground truth's category
            names, else the category id.
    """

    def __init__(self, ground_truth: str | os.PathLike | Mapping, category_ids: Sequence[int],
                 names: Sequence[str] | None = None) -> None:
        self.gt = load_ground_truth(ground_truth)
        self.category_ids = [int(c) for c in category_ids]
        gt_names = {int(c["id"]): str(c.get("name", c["id"])) for c in self.gt["categories"]}
        if names is not None and len(names) != len(self.category_ids):
            raise ValueError(f"{len(names)} names for {len(self.category_ids)} category ids")
        raw = list(names) if names is not None else [gt_names.get(c, str(c)) for c in self.category_ids]
        # a class key must be unique: fall back to the id for repeated names
        self.class_keys = [n if raw.count(n) == 1 else str(c) for n, c in zip(raw, self.category_ids)]
        self._cat_lut = torch.tensor(self.category_ids, dtype=torch.float64)
        self._gt_image_ids = {int(im["id"]) for im in self.gt["images"]}
        self._store: dict[int, np.ndarray] = {}

    # ---- accumulation -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every result (start of a new validation pass)."""
        self._store = {}

    def update(self, detections: Sequence[torch.Tensor], meta: Sequence[ImageMeta]) -> None:
        """Add one batch: ``detections[i]`` ``[n_i, 6]`` (x1, y1, x2, y2 in network-input pixels,
        score, contiguous class), as returned by :func:`.nms.non_max_suppression`, for the image
        described by ``meta[i]``. Boxes are mapped to original pixels through the letterbox meta.
        An image with no detections still counts as evaluated."""
        if len(detections) != len(meta):
            raise ValueError(f"{len(detections)} detection tensors for {len(meta)} images")
        for det, m in zip(detections, meta):
            self.add(m.image_id, detections_to_original(det.detach(), m))

    def add(self, image_id: int, detections: torch.Tensor) -> None:
        """Add one image whose ``[n, 6]`` detections are already in original image pixels."""
        image_id = int(image_id)
        if image_id not in self._gt_image_ids:
            raise ValueError(f"image id {image_id} is not in the ground truth ({len(self._gt_image_ids)} images)")
        if image_id in self._store:
            return
        det = detections.detach().to("cpu", torch.float64).reshape(-1, 6)
        if len(det) and ((det[:, 5] < 0) | (det[:, 5] >= len(self.category_ids))).any():
            raise ValueError(f"class ids out of range [0, {len(self.category_ids)}) for image {image_id}")
        xywh = torch.cat((det[:, :2], det[:, 2:4] - det[:, :2]), 1)
        rows = torch.cat((xywh.round(decimals=BOX_DECIMALS), det[:, 4:5].round(decimals=SCORE_DECIMALS),
                          self._cat_lut[det[:, 5].long()][:, None]), 1)
        self._store[image_id] = rows.numpy()

    @property
    def image_ids(self) -> list[int]:
        """Evaluated image ids, in the order first seen."""
        return list(self._store)

    @property
    def num_detections(self) -> int:
        return sum(len(r) for r in self._store.values())

    def gather(self) -> None:
        """Under an initialised ``torch.distributed`` group with more than one rank, merge the
        results of every rank into every rank (``all_gather_object``; a collective: call it on all
        ranks). Lower ranks win for an image id seen by several ranks. A no-op otherwise."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return
        parts: list[dict[int, np.ndarray] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, self._store)
        merged: dict[int, np.ndarray] = {}
        for part in parts:
            for image_id, rows in (part or {}).items():
                merged.setdefault(image_id, rows)
        self._store = merged

    # ---- output -------------------------------------------------------------------------------

    def results(self) -> list[dict]:
        """COCO results: ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` per detection,
        original pixels."""
        out = []
        for image_id, rows in self._store.items():
            for x, y, w, h, score, cat in rows.tolist():
                out.append({"image_id": image_id, "category_id": int(cat), "bbox": [x, y, w, h], "score": score})
        return out

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`results` (COCO results format) to ``path`` (atomically); returns the path."""
        return atomic_write_json(self.results(), path)

    def compute(self) -> dict:
        raise NotImplementedError
