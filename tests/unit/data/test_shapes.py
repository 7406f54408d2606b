import json

import cv2
import numpy as np
from pycocotools.coco import COCO

from yolov7_lightning.data.coco import load_coco
from yolov7_lightning.data.shapes import CLASSES, HUES, ShapesSpec, ensure_shapes

SPEC = ShapesSpec(num_train=40, num_val=6, image_size=160, seed=3)


def test_shapes_deterministic_across_roots_and_workers(tmp_path):
    a = ensure_shapes(SPEC, tmp_path / "a", workers=1)
    b = ensure_shapes(SPEC, tmp_path / "b", workers=2)
    for rel in ("annotations/instances_train.json", "annotations/instances_val.json", "images/train/000007.jpg"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert ensure_shapes(SPEC, tmp_path / "a") == a  # reused, not regenerated
    other = ensure_shapes(ShapesSpec(num_train=40, num_val=6, image_size=160, seed=4), tmp_path / "a")
    assert other != a and (other / "images/train/000007.jpg").read_bytes() != (a / "images/train/000007.jpg").read_bytes()


def test_shapes_is_a_valid_coco_dataset_with_polygons(tmp_path):
    root = ensure_shapes(SPEC, tmp_path)
    coco = COCO(str(root / "annotations/instances_train.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    anns = coco.loadAnns(coco.getAnnIds())
    sizes = np.array([max(a["bbox"][2:]) for a in anns])
    assert sizes.min() >= 5 and sizes.max() <= 160 * 0.55  # ~8 px to ~half the image
    assert len({a["category_id"] for a in anns}) == len(CLASSES)
    for a in anns:  # the box is the polygon's extent
        poly = np.array(a["segmentation"][0]).reshape(-1, 2)
        x, y, w, h = a["bbox"]
        assert np.allclose([x, y, x + w, y + h], [*poly.min(0), *poly.max(0)], atol=0.02)
    index = load_coco(root / "annotations/instances_train.json", root / "images/train")
    assert index.report.clean and len(index) == 40 and index.has_segments
    assert index.category_ids == [1, 2, 3, 4, 5]


def test_shape_pixels_have_their_class_colour(tmp_path):
    root = ensure_shapes(SPEC, tmp_path)
    data = json.loads((root / "annotations/instances_train.json").read_text())
    hits = total = 0
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        if min(w, h) < 12:
            continue
        img = cv2.imread(str(root / "images/train" / f"{a['image_id'] - 1:06d}.jpg"))
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        cx, cy = int(x + w / 2), int(y + h / 2)
        hue = int(np.median(hsv[cy - 1:cy + 2, cx - 1:cx + 2, 0]))
        d = abs(hue - HUES[a["category_id"] - 1])
        hits += min(d, 180 - d) <= 10
        total += 1
    assert total > 20 and hits / total > 0.85  # the rest are occluded by a later shape


def test_pool_workers_end_in_a_process_that_ignores_sigterm(tmp_path):
    """submitit's jobs ignore SIGTERM: the generation pool must end without signalling its workers,
    and the job's own handler must be left as it was."""
    import subprocess
    import sys

    code = f"""
import signal
from pathlib import Path
from yolov7_lightning.data.shapes import ShapesSpec, ensure_shapes
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for n in range(5):  # small pools: the workers that get no task are the ones a SIGTERM would find
    out = ensure_shapes(ShapesSpec(num_train=3 + n, num_val=2, image_size=64), Path({str(tmp_path)!r}) / str(n), workers=2)
    assert (out / "done.json").is_file()
assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
