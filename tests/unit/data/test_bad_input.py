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


def _yolo_folder(tmp_path, labels: dict[str, str], size: int = 32):
    for name, text in labels.items():
        write_rgb(tmp_path / "images" / f"{name}.png", block_image(size, size, (0, 0, 4, 4), 0))
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"{name}.txt").write_text(text)
    return tmp_path / "images"


def test_class_that_is_not_an_index_is_a_counted_skip_with_file_and_line(tmp_path):
    """``inf`` used to raise an OverflowError (in the loader and in the class count), ``nan`` a
    ValueError without the line; each is a counted skip naming the file and line."""
    bad = {"inf": "0 0.5 0.5 0.2 0.2\ninf 0.5 0.5 0.2 0.2\n", "nan": "nan 0.5 0.5 0.2 0.2\n",
           "huge": "1e400 0.5 0.5 0.2 0.2\n", "negative": "-1 0.5 0.5 0.2 0.2\n", "half": "1.5 0.5 0.5 0.2 0.2\n"}
    images = _yolo_folder(tmp_path, {"ok": "1 0.5 0.5 0.2 0.2\n", **bad})
    for names in (None, ["x", "y"]):
        index = load_yolo(images, names=names)
        assert [r.path.stem for r in index.records] == ["ok"] and index.names[1] in ("class1", "y")
        assert _skips(index) == {"malformed label file": 5}
        labels = tmp_path / "labels"
        assert index.report.examples["malformed label file"] == [  # the first three, in file order
            f"{labels / 'half.txt'} (line 1: class 1.5 is not a class index (a whole number >= 0))",
            f"{labels / 'huge.txt'} (line 1: class inf is not a class index (a whole number >= 0))",
            f"{labels / 'inf.txt'} (line 2: class inf is not a class index (a whole number >= 0))"]
    dm = YoloDataModule(source={"kind": "yolo", "root": str(tmp_path), "splits": {"train": "images", "val": "images"}},
                        img_size=64, batch_size=2)
    dm.setup("fit")  # the class count over all splits reads the same lines
    assert dm.names == ["class0", "class1"]


def test_yolo_bbox_partly_outside_is_clipped_and_counted(tmp_path):
    images = _yolo_folder(tmp_path, {"a": "0 0.5 0.5 0.25 0.25\n0 0.9 0.5 0.4 0.25\n", "b": "0 0.5 0.5 0.5 0.5\n"})
    index = load_yolo(images, names=["x"])
    assert index.records[0].boxes.tolist() == [[12, 12, 20, 20], [pytest.approx(22.4), 12, 32, 20]]
    assert dict(index.report.repaired) == {"bbox partly outside the image, clipped": 1}
    assert index.report.examples["bbox partly outside the image, clipped"] == [f"{tmp_path / 'labels' / 'a.txt'} (line 2)"]
    assert "repaired 1 x bbox partly outside the image, clipped" in index.report.summary()


def _png_header(path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` (PIL reads the size from the header alone)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_image_over_the_pixel_limit_is_a_counted_skip(tmp_path):
    """Over ``Image.MAX_IMAGE_PIXELS`` (PIL warns) and over twice that (PIL raises
    DecompressionBombError, which used to end the run): both a counted skip naming the file."""
    images = _yolo_folder(tmp_path, {"ok": "0 0.5 0.5 0.2 0.2\n"})
    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 1
    _png_header(images / "bomb.png", side, side)
    _png_header(images / "large.png", side // 2 * 2, side // 2)  # between the limit and twice the limit
    assert Image.MAX_IMAGE_PIXELS < (side // 2 * 2) * (side // 2) < 2 * Image.MAX_IMAGE_PIXELS
    index = load_yolo(images, names=["x"])
    assert [r.path.stem for r in index.records] == ["ok"]
    reason = "image over PIL's pixel limit (PIL.Image.MAX_IMAGE_PIXELS; a decompression bomb?)"
    assert _skips(index) == {reason: 2}
    assert sorted(index.report.examples[reason]) == [str(images / "bomb.png"), str(images / "large.png")]
