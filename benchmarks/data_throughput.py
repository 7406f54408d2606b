"""Training-pipeline throughput in ONE process (= per DataLoader worker), images/s.

    python benchmarks/data_throughput.py [--n 150] [--root /tmp/yolov7-bench]
    python benchmarks/data_throughput.py --size 192 --augment quick scratch_tiny   # the quick recipe's pipeline

Compare with the images/s a training step consumes (``benchmarks/train_speed.py``: batch / s_per_step):
the DataLoader keeps up while workers x images/s per worker exceeds it.

Rows (default): the scratch_p5 recipe (mosaic 4/9 + mixup 0.15 + affine + HSV + paste-in 0.15 + flip), the
same with mixup on every sample, and augmentation off (letterbox only); each without and with the
decoded-image cache. Source images: the shapes generator at ``--size`` px (JPEG). ``--augment``
names ``conf/augment`` groups to measure instead.
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


def augment_group(name: str) -> AugmentConfig:
    """``conf/augment/<name>.yaml`` as composed by Hydra."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from yolov7_lightning.cli.paths import CONFIG_DIR
    from yolov7_lightning.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", [f"augment={name}"])
    return AugmentConfig(**OmegaConf.to_container(cfg.augment, resolve=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--root", default=None)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--augment", nargs="+", default=None, help="conf/augment groups, e.g. quick scratch_tiny")
    args = ap.parse_args()
    size = args.size
    root = ensure_shapes(ShapesSpec(num_train=128, num_val=1, image_size=size), args.root or tempfile.mkdtemp())
    index = load_coco(root / "annotations/instances_train.json", root / "images/train")
    if args.augment:
        rows = [(f"augment={name}", augment_group(name)) for name in args.augment]
    else:
        rows = [("scratch_p5 (mosaic+mixup 0.15+affine+HSV)", AugmentConfig()),
                ("scratch_p5 with mixup on every sample", AugmentConfig(mixup=1.0)),
                ("augmentation off (letterbox only)", AugmentConfig(enabled=False))]
    print(f"| pipeline at {size}, 1 process | no cache (img/s) | decoded-image cache (img/s) |")
    print("|---|---|---|")
    for name, aug in rows:
        plain = rate(DetectionDataset(index, (size, size), True, aug), args.n)
        cached_ds = DetectionDataset(index, (size, size), True, aug)
        cached_ds.fill_cache(ImageCache(2**31))
        print(f"| {name} | {plain:.1f} | {rate(cached_ds, args.n):.1f} |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
