"""Training-pipeline throughput at 640 in ONE process (= per DataLoader worker), images/s.

    python benchmarks/data_throughput.py [--n 150] [--root /tmp/yolov7-bench]

Rows: the scratch_p5 recipe (mosaic 4/9 + mixup 0.15 + affine + HSV + paste-in 0.15 + flip), the
same with mixup on every sample, and augmentation off (letterbox only); each without and with the
decoded-image cache. Source images: the shapes generator at 640 px (JPEG).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from yolov7_lightning.data.coco import load_coco
from yolov7_lightning.data.config import AugmentConfig
from yolov7_lightning.data.dataset import DetectionDataset, SampleKey
from yolov7_lightning.data.image_io import ImageCache
from yolov7_lightning.data.shapes import ShapesSpec, ensure_shapes


def rate(ds: DetectionDataset, n: int) -> float:
    for i in range(5):  # warm-up
        ds[SampleKey(i, i, ds.img_size)]
    t = time.perf_counter()
    for i in range(n):
        ds[SampleKey(i % len(ds), 1000 + i, ds.img_size)]
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--root", default=None)
    args = ap.parse_args()
    root = ensure_shapes(ShapesSpec(num_train=128, num_val=1, image_size=640), args.root or tempfile.mkdtemp())
    index = load_coco(root / "annotations/instances_train.json", root / "images/train")
    rows = [("scratch_p5 (mosaic+mixup 0.15+affine+HSV)", AugmentConfig()),
            ("scratch_p5 with mixup on every sample", AugmentConfig(mixup=1.0)),
            ("augmentation off (letterbox only)", AugmentConfig(enabled=False))]
    print("| pipeline at 640, 1 process | no cache (img/s) | decoded-image cache (img/s) |")
    print("|---|---|---|")
    for name, aug in rows:
        plain = rate(DetectionDataset(index, (640, 640), True, aug), args.n)
        cached_ds = DetectionDataset(index, (640, 640), True, aug)
        cached_ds.fill_cache(ImageCache(2**31))
        print(f"| {name} | {plain:.1f} | {rate(cached_ds, args.n):.1f} |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
