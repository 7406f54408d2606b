"""Hand-made COCO ground truths for the evaluation tests (category ids 3 "cat" and 7 "dog")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from yolov7_lightning.data import ImageMeta

CATEGORY_IDS = [3, 7]  # contiguous class 0 -> category 3, class 1 -> category 7
NAMES = ["cat", "dog"]
BACKENDS = ["pycocotools", "torchmetrics"]


def coco_gt(images: dict[int, tuple[int, int]], anns: list[tuple]) -> dict:
    """``images``: id -> (height, width); ``anns``: (image_id, category_id, [x, y, w, h], iscrowd)."""
    return {
        "images": [{"id": i, "file_name": f"{i}.jpg", "height": h, "width": w} for i, (h, w) in images.items()],
        "annotations": [
            {"id": k + 1, "image_id": i, "category_id": c, "bbox": list(map(float, b)), "iscrowd": crowd,
             "area": float(b[2] * b[3])}
            for k, (i, c, b, crowd) in enumerate(anns)
        ],
        "categories": [{"id": c, "name": n} for c, n in zip(CATEGORY_IDS, NAMES)],
    }


def det(*rows) -> torch.Tensor:
    """Detections ``[n, 6]`` from (x, y, w, h, score, class) rows (COCO-style boxes, easier to
    check by hand) -> x1, y1, x2, y2, score, class."""
    t = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
    t[:, 2:4] += t[:, :2]
    return t


def identity_meta(image_id: int, h: int = 480, w: int = 640) -> ImageMeta:
    return ImageMeta(image_id, Path(f"{image_id}.jpg"), (h, w), (h, w), (1.0, 1.0), (0, 0))


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param
