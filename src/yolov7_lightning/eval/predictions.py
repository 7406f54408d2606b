"""Detections -> JSON-serialisable prediction records (what ``yolov7-predict`` writes)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..atomic import atomic_write_json
from ..data.collate import ImageMeta
from .mapping import detections_to_original

__all__ = ["prediction_records", "save_predictions"]


def prediction_records(detections: Sequence[torch.Tensor], meta: Sequence[ImageMeta],
                       names: Sequence[str] | None = None, category_ids: Sequence[int] | None = None,
                       decimals: int = 2) -> list[dict]:
    """One record per image from ``detections[i]`` ``[n_i, 6]`` (network-input pixels, as
    returned by NMS) and ``meta[i]``::

        {"image_id": int, "file": str, "height": int, "width": int,
         "boxes": [[x1, y1, x2, y2], ...],   # original image pixels, rounded to `decimals`
         "scores": [float, ...], "classes": [int, ...],        # contiguous class ids
         "names": [str, ...],                                  # when `names` is given
         "category_ids": [int, ...]}                           # when `category_ids` is given

    Detections keep their order (decreasing score after NMS).
    """
    if len(detections) != len(meta):
        raise ValueError(f"{len(detections)} detection tensors for {len(meta)} images")
    records = []
    for det, m in zip(detections, meta):
        det = detections_to_original(det.detach(), m).cpu().double()
        classes = det[:, 5].long().tolist()
        rec = {
            "image_id": int(m.image_id), "file": str(m.path), "height": int(m.orig_hw[0]), "width": int(m.orig_hw[1]),
            "boxes": det[:, :4].round(decimals=decimals).tolist(),
            "scores": det[:, 4].round(decimals=5).tolist(),
            "classes": classes,
        }
        if names is not None:
            rec["names"] = [names[c] if 0 <= c < len(names) else str(c) for c in classes]
        if category_ids is not None:
            rec["category_ids"] = [int(category_ids[c]) for c in classes]
        records.append(rec)
    return records


def save_predictions(records: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write prediction records as one JSON list (atomically); returns the path."""
    return atomic_write_json(list(records), path, indent=1)
