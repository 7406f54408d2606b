"""torchmetrics agrees with pycocotools; make_evaluator from a DatasetIndex."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from yolov7_lightning.data.records import DatasetIndex, ImageRecord, LoadReport
from yolov7_lightning.eval import COCO_METRICS, CocoEvaluator, TorchmetricsEvaluator, ground_truth_of, make_evaluator

from .conftest import CATEGORY_IDS, coco_gt, identity_meta


def random_scene(seed: int = 0, n_images: int = 12):
    """Ground truth of every size (some crowd) and noisy detections: jittered true positives,
    duplicates, wrong classes and random false positives, with random scores."""
    g = np.random.default_rng(seed)
    images = {i: (480, 640) for i in range(1, n_images + 1)}
    anns, dets = [], {}
    for i in images:
        rows = []
        for _ in range(g.integers(0, 6)):
            w, h = g.uniform(8, 200, 2)
            x, y = g.uniform(0, 640 - w), g.uniform(0, 480 - h)
            cls = int(g.integers(0, 2))
            anns.append((i, CATEGORY_IDS[cls], [x, y, w, h], int(g.random() < 0.1)))
            for _ in range(g.integers(0, 3)):  # 0-2 noisy detections of this object
                jx, jy, jw, jh = g.normal(0, 0.1, 4) * [w, h, w, h]
                c = cls if g.random() < 0.85 else 1 - cls
                rows.append([x + jx, y + jy, x + jx + w + jw, y + jy + h + jh, g.random(), c])
        for _ in range(g.integers(0, 4)):  # false positives
            x, y = g.uniform(0, 500), g.uniform(0, 380)
            rows.append([x, y, x + g.uniform(5, 140), y + g.uniform(5, 100), g.random(), int(g.integers(0, 2))])
        dets[i] = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
    return coco_gt(images, anns), dets


@pytest.mark.parametrize("seed", [0, 1])
def test_torchmetrics_backend_agrees_with_pycocotools(seed):
    # seed 1 has recalls landing exactly on recall thresholds (e.g. 3/5): it disagrees by 1/101 of
    # a class AP with torchmetrics' default float32 thresholds (see torchmetrics_eval.py)
    gt, dets = random_scene(seed)
    outs = []
    for cls in (CocoEvaluator, TorchmetricsEvaluator):
        ev = cls(gt, CATEGORY_IDS)
        ev.update(list(dets.values()), [identity_meta(i) for i in dets])
        outs.append(ev.compute())
    coco, tm = outs
    assert 0.1 < coco["map"] < 0.9  # a non-trivial case
    for key in COCO_METRICS:
        assert tm[key] == pytest.approx(coco[key], abs=1e-3), key
    assert tm["per_class"] == pytest.approx(coco["per_class"], abs=1e-3)
    assert tm["per_class_map50"] == pytest.approx(coco["per_class_map50"], abs=1e-3)
    assert tm["num_detections"] == coco["num_detections"] > 0


def test_torchmetrics_coco_backend_choice():
    gt, _ = random_scene(0, 1)
    assert TorchmetricsEvaluator(gt, CATEGORY_IDS, coco_backend="pycocotools").coco_backend == "pycocotools"
    assert TorchmetricsEvaluator(gt, CATEGORY_IDS).coco_backend in ("pycocotools", "faster_coco_eval")


def test_make_evaluator_from_a_dataset_index(tmp_path):
    record = ImageRecord(5, tmp_path / "a.jpg", 100, 200, np.array([[10, 10, 60, 40]], np.float32),
                         np.array([1]), [np.zeros((0, 2), np.float32)])
    index = DatasetIndex([record], ["cat", "dog"], CATEGORY_IDS, LoadReport("test"))
    gt = ground_truth_of(index)
    assert isinstance(gt, dict) and gt["annotations"][0]["category_id"] == 7
    ev = make_evaluator("torchmetrics", index=index)
    assert isinstance(ev, TorchmetricsEvaluator) and ev.class_keys == ["cat", "dog"]
    ev.add(5, torch.tensor([[10.0, 10, 60, 40, 0.8, 1]]))
    assert ev.compute()["map"] == pytest.approx(1.0)
    index.annotation_file = Path("instances_val.json")
    assert ground_truth_of(index) == Path("instances_val.json")
    with pytest.raises(ValueError, match="needs ground_truth"):
        make_evaluator("pycocotools")
