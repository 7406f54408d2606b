"""Tiny on-disk datasets built in tmp_path for the data tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

# class id -> pure RGB colour of its solid rectangle
COLOURS = {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255), 3: (255, 255, 0)}


def write_rgb(path: Path, img_rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(img_rgb[..., ::-1]))


def block_image(h: int, w: int, box, cls: int) -> np.ndarray:
    """Grey image with one solid rectangle of the class colour at integer xyxy ``box``."""
    img = np.full((h, w, 3), 128, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = COLOURS[cls]
    return img


def make_coco(root: Path, n: int = 6, polygons: bool = True, png: bool = True) -> tuple[Path, Path]:
    """``n`` images of varied sizes, one coloured block each (category ids 10, 20, 30, 40)."""
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(n):
        h, w = int(rng.integers(60, 120)), int(rng.integers(60, 120))
        bw, bh = int(rng.integers(12, w // 2)), int(rng.integers(12, h // 2))
        x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        cls = i % 4
        name = f"{i:03d}.png" if png else f"{i:03d}.jpg"
        write_rgb(root / "images" / name, block_image(h, w, (x1, y1, x1 + bw, y1 + bh), cls))
        images.append({"id": 100 + i, "file_name": name, "height": h, "width": w})
        seg = [x1, y1, x1 + bw, y1, x1 + bw, y1 + bh, x1, y1 + bh]
        anns.append({"id": i + 1, "image_id": 100 + i, "category_id": (cls + 1) * 10, "iscrowd": 0,
                     "bbox": [x1, y1, bw, bh], "area": bw * bh, "segmentation": [seg] if polygons else []})
    cats = [{"id": (c + 1) * 10, "name": f"c{c}"} for c in range(4)]
    ann = root / "instances.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return ann, root / "images"


@pytest.fixture
def coco_dir(tmp_path):
    return make_coco(tmp_path)
