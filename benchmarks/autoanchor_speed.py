"""Autoanchor speed: the official check (BPR) plus k-means and 1,000 generations of evolution on
100k boxes. Prints seconds; no assertion (run: PYTHONPATH=src python benchmarks/autoanchor_speed.py)."""

from __future__ import annotations

import time

import numpy as np

from yolov7_lightning.models import get_arch
from yolov7_lightning.models.autoanchor import check_anchors


def main(n: int = 100_000) -> None:
    rng = np.random.default_rng(0)
    anchors = np.array(get_arch("yolov7-tiny").anchors, np.float64).reshape(-1, 2)
    owner = np.repeat(np.arange(n // 10), 10)
    for name, wh in (("small boxes 2-6 px (evolves)", rng.uniform(2, 6, (n, 2))),
                     ("boxes 12-300 px, w and h independent", np.exp(rng.uniform(np.log(12), np.log(300), (n, 2))) * [1, 0.8])):
        start = time.perf_counter()
        fit = check_anchors(wh, owner, anchors, 3, 640, seed=0)
        print(f"{name}: {n} boxes, {time.perf_counter() - start:.2f} s; {fit.summary()}")


if __name__ == "__main__":
    main()
