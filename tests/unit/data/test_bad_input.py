"""Every bad-input case of the issue: a clear error naming the file, or a counted skip."""

import json
import logging

import cv2
import numpy as np
import pytest
from PIL import Image

from yolov7_lightning.data import DatasetError, YoloDataModule
from yolov7_lightning.data.coco import load_coco
from yolov7_lightning.data.image_io import ImageLoadError, decode_image
from yolov7_lightning.data.yolo_txt import load_yolo

from .conftest import block_image, make_coco, write_rgb


def _edit(ann_path, fn):
    data = json.loads(ann_path.read_text())
    fn(data)
    ann_path.write_text(json.dumps(data))


def _skips(index):
    return dict(index.report.skipped)


def test_missing_image_file_is_counted_skip(coco_dir):
    ann, images = coco_dir
    (images / "001.png").unlink()
    index = load_coco(ann, images)
    assert len(index) == 5 and _skips(index) == {"missing image file": 1}
    assert "001.png" in index.report.summary()


def test_truncated_and_corrupt_jpeg_are_counted_skips(tmp_path):
    ann, images = make_coco(tmp_path, png=False)
    data = (images / "000.jpg").read_bytes()
    (images / "000.jpg").write_bytes(data[: len(data) // 2])
    (images / "001.jpg").write_bytes(b"this is not an image at all")
    index = load_coco(ann, images)
    assert len(index) == 4
    reasons = _skips(index)
    assert reasons["truncated JPEG (no end-of-image marker)"] == 1
    assert sum(v for k, v in reasons.items() if k.startswith("corrupt or unreadable image")) == 1


def test_decode_failure_after_startup_names_the_file(tmp_path):
    with pytest.raises(ImageLoadError, match="gone.jpg"):
        decode_image(tmp_path / "gone.jpg")


def test_grayscale_rgba_and_16bit_png_decode_to_rgb_uint8(tmp_path):
    gray = np.full((8, 8), 77, np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 200, 10  # red in BGRA, almost transparent
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    deep = np.full((8, 8, 3), 40000, np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    g, a, d = (decode_image(tmp_path / n) for n in ("g.png", "a.png", "d.png"))
    for img in (g, a, d):
        assert img.dtype == np.uint8 and img.shape == (8, 8, 3)
    assert (g == 77).all()
    assert (a[..., 0] == 200).all() and (a[..., 1:] == 0).all()
    assert (d == 40000 >> 8).all()


def test_exif_rotated_jpeg_is_used_upright_and_mismatched_size_is_skipped(tmp_path):
    stored = block_image(40, 80, (0, 0, 20, 40), 0)  # raw pixels 80 wide x 40 high, red block at left
    exif = Image.Exif()
    exif[274] = 6  # display rotated 90 degrees clockwise: 40 wide x 80 high, red block at the top
    (tmp_path / "images").mkdir()
    Image.fromarray(stored).save(tmp_path / "images/r.jpg", exif=exif, quality=95)
    Image.fromarray(stored).save(tmp_path / "images/s.jpg", exif=exif, quality=95)
    cats = [{"id": 1, "name": "red"}]
    images = [{"id": 1, "file_name": "r.jpg", "height": 80, "width": 40},   # displayed size: right
              {"id": 2, "file_name": "s.jpg", "height": 40, "width": 80}]   # raw size: ambiguous
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 20], "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 20, 40], "iscrowd": 0}]
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    index = load_coco(ann, tmp_path / "images")
    assert [r.image_id for r in index.records] == [1]
    assert any("size in JSON differs" in k for k in _skips(index))
    img = decode_image(index.records[0].path)
    assert img.shape == (80, 40, 3)
    assert img[:20, :, 0].mean() > 200 and img[25:, :, 0].mean() < 160  # the box covers the red block


@pytest.mark.parametrize("bbox,reason", [
    ([5, 5, 0, 10], "bbox with w or h <= 0"), ([5, 5, 10, -3], "bbox with w or h <= 0"),
    ([float("nan"), 5, 10, 10], "bbox with NaN or inf"), ([500, 500, 10, 10], "bbox outside the image"),
])
def test_bad_bbox_is_counted_skip(coco_dir, bbox, reason):
    ann, images = coco_dir
    _edit(ann, lambda d: d["annotations"][0].update(bbox=bbox))
    index = load_coco(ann, images)
    assert _skips(index) == {reason: 1}
    assert len(index.records[0].boxes) == 0  # the image stays, as a negative


def test_bbox_partly_outside_is_clipped_and_counted(coco_dir):
    ann, images = coco_dir
    data = json.loads(ann.read_text())
    w = data["images"][0]["width"]
    _edit(ann, lambda d: d["annotations"][0].update(bbox=[w - 10, 0, 30, 10]))
    index = load_coco(ann, images)
    assert index.records[0].boxes.tolist() == [[w - 10, 0, w, 10]]
    assert dict(index.report.repaired) == {"bbox partly outside the image, clipped": 1}


def test_unknown_category_and_unknown_image_are_counted(coco_dir):
    ann, images = coco_dir
    def fn(d):
        d["annotations"][0]["category_id"] = 999
        d["annotations"].append({"id": 77, "image_id": 12345, "category_id": 10, "bbox": [1, 1, 5, 5]})
    _edit(ann, fn)
    index = load_coco(ann, images)
    assert _skips(index) == {"category id not in 'categories'": 1, "annotation for an unknown image id": 1}


def test_duplicate_image_ids_json_syntax_and_empty_dataset_are_errors(coco_dir, tmp_path):
    ann, images = coco_dir
    good = ann.read_text()
    _edit(ann, lambda d: d["images"][1].update(id=d["images"][0]["id"]))
    with pytest.raises(DatasetError, match=r"instances.json: duplicate image ids \[100\]"):
        load_coco(ann, images)
    ann.write_text(good[:-5] + ",,}")
    with pytest.raises(DatasetError, match=r"instances.json: JSON syntax error at line 1"):
        load_coco(ann, images)
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(DatasetError, match="instances.json: empty dataset"):
        load_coco(ann, images)
    for p in images.iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="empty dataset, no usable images"):
        load_yolo(images)


def test_label_file_with_malformed_line_skips_the_image_with_file_and_line(tmp_path):
    for name, text in (("a", "0 0.5 0.5 0.2 0.2\n"), ("b", "0 0.5 0.5 0.2 0.2\n1 0.5 oops 0.1 0.1\n"),
                       ("c", "0 0.5 0.5 0.2\n"), ("d", "7 0.5 0.5 0.2 0.2\n")):
        write_rgb(tmp_path / "images" / f"{name}.png", block_image(32, 32, (0, 0, 4, 4), 0))
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"{name}.txt").write_text(text)
    index = load_yolo(tmp_path / "images", names=["x", "y"])
    assert [r.path.stem for r in index.records] == ["a"]
    assert _skips(index) == {"malformed label file": 3}
    summary = index.report.summary()
    assert "b.txt (line 2: non-numeric value)" in summary and "c.txt (line 1: expected 5 values" in summary


def test_datamodule_reports_the_summary_once_at_startup(coco_dir, caplog):
    ann, images = coco_dir
    (images / "002.png").unlink()
    src = {"kind": "coco", "root": str(ann.parent),
           "splits": {"train": {"images": "images", "annotations": ann.name},
                      "val": {"images": "images", "annotations": ann.name}}}
    dm = YoloDataModule(source=src, augment=None, img_size=64, batch_size=2)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
        dm.setup("fit")
        batches = list(dm.val_dataloader())
    lines = [r.getMessage() for r in caplog.records if "missing image file" in r.getMessage()]
    assert len(lines) == 2  # one per split (train and val), once each
    assert "skipped 1 x missing image file" in lines[0]
    assert sum(len(b["meta"]) for b in batches) == 5
