"""One class list for every split, through ``yolov7-train``.

``data=coco``: train and val files whose categories differ (fewer in val, the same names with other
ids, swapped names) stop the run before training with an error naming both files and the first
difference; ``data.source.names`` maps categories by name instead. ``data=yolo`` without ``names``:
the class count comes from the labels of all splits (a train index beyond val's maximum used to
crash the assigner), classes without boxes in a split are named in a warning.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import run_cli
from yolov7_lightning.cli import train as train_cli
from yolov7_lightning.data import YoloDataModule

TINY = ["data.img_size=64", "data.batch_size=2", "data.num_workers=0", "data.persistent_workers=false",
        "data.pin_memory=false", "export.enabled=false", "visuals.enabled=false", "+trainer.fast_dev_run=true",
        "schedule.warmup_min_iters=0", "schedule.warmup_epochs=0"]


def write_images(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        img = np.full((64, 64, 3), 90, np.uint8)
        cv2.rectangle(img, (8 + i, 8), (40 + i, 40), (200, 60, 60), -1)
        cv2.imwrite(str(folder / f"{i}.jpg"), img)
        names.append(f"{i}.jpg")
    return names


def write_coco(root: Path, split: str, categories: list[tuple[int, str]], n: int = 4) -> Path:
    files = write_images(root / "images" / split, n)
    cats = [c for c, _ in categories]
    anns = [{"id": i + 1, "image_id": i, "category_id": cats[i % len(cats)], "bbox": [8, 8, 32, 32], "area": 1024,
             "iscrowd": 0} for i in range(n)]
    path = root / "annotations" / f"{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": [{"id": i, "file_name": f, "height": 64, "width": 64}
                                           for i, f in enumerate(files)],
                                "annotations": anns, "categories": [{"id": c, "name": n} for c, n in categories]}))
    return path


def coco_args(root: Path) -> list[str]:
    return ["data=coco", f"data.source.root={root}",
            "data.source.splits.train.images=images/train", "data.source.splits.train.annotations=annotations/train.json",
            "data.source.splits.val.images=images/val", "data.source.splits.val.annotations=annotations/val.json"]


TRAIN_CATS = [(1, "circle"), (2, "square"), (3, "triangle")]
CASES = {
    "fewer_in_val": ([(1, "circle"), (2, "square")], "class 2: (3, 'triangle') vs nothing (3 vs 2 categories)"),
    "other_ids": ([(11, "circle"), (12, "square"), (13, "triangle")], "class 0: (1, 'circle') vs (11, 'circle')"),
    "swapped_names": ([(1, "square"), (2, "circle"), (3, "triangle")], "class 0: (1, 'circle') vs (1, 'square')"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_coco_splits_that_disagree_stop_before_training(tmp_path, case):
    val_cats, difference = CASES[case]
    train_json = write_coco(tmp_path, "train", TRAIN_CATS)
    val_json = write_coco(tmp_path, "val", val_cats)
    run = tmp_path / "run"
    code, out, err = run_cli(train_cli.main, *coco_args(tmp_path), *TINY, f"hydra.run.dir={run}")
    assert code == 1, out[-2000:] + err[-2000:]
    assert err.startswith("error: the class lists of train (") and len(err.strip().splitlines()) == 1, err
    assert str(train_json) in err and str(val_json) in err and difference in err, err
    assert not list((run / "checkpoints").glob("*.ckpt"))


def test_coco_names_policy_maps_categories_by_name(tmp_path):
    write_coco(tmp_path, "train", TRAIN_CATS)
    write_coco(tmp_path, "val", [(13, "triangle"), (12, "square"), (11, "circle")])
    dm = YoloDataModule(source={"kind": "coco", "root": str(tmp_path), "names": ["circle", "square", "triangle"],
                                "splits": {"train": {"images": "images/train", "annotations": "annotations/train.json"},
                                           "val": {"images": "images/val", "annotations": "annotations/val.json"}}},
                        img_size=64, batch_size=2)
    dm.setup("fit")
    assert dm.dataset("train").names == dm.dataset("val").names == ["circle", "square", "triangle"]
    assert dm.dataset("train").category_ids == [1, 2, 3] and dm.category_ids == [11, 12, 13]
    # val annotation i has category [13, 12, 11][i % 3] -> classes 2, 1, 0, 2 by name
    assert [int(r.classes[0]) for r in dm.dataset("val").index.records] == [2, 1, 0, 2]


def write_yolo(root: Path, split: str, classes: list[int]) -> None:
    files = write_images(root / "images" / split, len(classes))
    labels = root / "labels" / split
    labels.mkdir(parents=True, exist_ok=True)
    for f, c in zip(files, classes):
        (labels / f).with_suffix(".txt").write_text(f"{c} 0.4 0.4 0.5 0.5\n")


def test_yolo_class_count_from_all_splits(tmp_path):
    """A train index (4) beyond val's maximum (2) used to crash in the assigner with an IndexError."""
    write_yolo(tmp_path, "train", [0, 1, 4, 2])
    write_yolo(tmp_path, "val", [0, 1, 2, 2])
    run = tmp_path / "run"
    code, out, err = run_cli(train_cli.main, "data=yolo", f"data.source.root={tmp_path}", *TINY, f"hydra.run.dir={run}")
    assert code == 0, out[-3000:] + err[-3000:]
    assert "model.num_classes 80 -> 5" in out
    assert "(val): no boxes of 2 class(es): class3, class4" in out and "(train): no boxes of 1 class(es): class3" in out


def test_yolo_stray_val_index_is_named(tmp_path):
    write_yolo(tmp_path, "train", [0, 1, 2, 1])
    write_yolo(tmp_path, "val", [0, 1, 7, 2])
    dm = YoloDataModule(source={"kind": "yolo", "root": str(tmp_path),
                                "splits": {"train": "images/train", "val": "images/val"}}, img_size=64, batch_size=2)
    dm.setup("fit")
    assert dm.dataset("train").names == dm.dataset("val").names == [f"class{i}" for i in range(8)]


def test_yolo_out_of_range_index_with_names_is_a_counted_skip(tmp_path):
    write_yolo(tmp_path, "train", [0, 1, 2, 1])
    write_yolo(tmp_path, "val", [0, 1, 7, 2])
    dm = YoloDataModule(source={"kind": "yolo", "root": str(tmp_path), "names": ["a", "b", "c"],
                                "splits": {"train": "images/train", "val": "images/val"}}, img_size=64, batch_size=2)
    dm.setup("fit")
    report = dm.dataset("val").index.report
    assert report.skipped["malformed label file"] == 1
    assert "2.txt (line 1: class 7 not in 0..2)" in report.summary()
