import json

import numpy as np

from yolov7_lightning.data.coco import index_to_coco, load_coco
from yolov7_lightning.data.yolo_txt import load_yolo

from .conftest import block_image, write_rgb


def test_yolo_boxes_polygons_negatives_and_coco_round_trip(tmp_path):
    img_dir = tmp_path / "images" / "val"
    write_rgb(img_dir / "a.png", block_image(40, 80, (8, 4, 24, 20), 0))
    write_rgb(img_dir / "b.png", block_image(50, 50, (0, 0, 5, 5), 1))
    write_rgb(img_dir / "neg.png", block_image(30, 30, (0, 0, 1, 1), 1))
    (tmp_path / "labels" / "val").mkdir(parents=True)
    (tmp_path / "labels/val/a.txt").write_text("0 0.2 0.3 0.2 0.4\n")
    (tmp_path / "labels/val/b.txt").write_text("1 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6\n")
    index = load_yolo(img_dir, names=["red", "green"])
    assert index.report.clean and [r.path.name for r in index.records] == ["a.png", "b.png", "neg.png"]
    a, b, neg = index.records
    assert np.allclose(a.boxes, [[8, 4, 24, 20]]) and a.classes.tolist() == [0]
    assert np.allclose(b.boxes, [[5, 5, 25, 30]]) and len(b.segments[0]) == 4
    assert len(neg.boxes) == 0
    out = tmp_path / "val.json"
    out.write_text(json.dumps(index_to_coco(index, img_dir)))
    back = load_coco(out, img_dir)
    assert back.names == ["red", "green"] and back.category_ids == [0, 1]
    for r1, r2 in zip(index.records, back.records):
        assert np.allclose(r1.boxes, r2.boxes, atol=1e-3) and r1.classes.tolist() == r2.classes.tolist()
