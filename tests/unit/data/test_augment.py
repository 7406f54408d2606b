"""Augmentations move boxes with the pixels: each box must sit on its class-coloured block."""

import logging

import numpy as np
import pytest

from yolov7_lightning.data.coco import load_coco
from yolov7_lightning.data.color import augment_hsv
from yolov7_lightning.data.config import AugmentConfig
from yolov7_lightning.data.geometry import WarpParams, box_candidates, random_perspective
from yolov7_lightning.data.mosaic import mixup, mosaic4, mosaic9
from yolov7_lightning.data.pipeline import Pipeline

from .conftest import COLOURS, make_coco

NO_COLOUR = dict(hsv_h=0.0, hsv_s=0.0, hsv_v=0.0)


def assert_boxes_on_blocks(img, boxes, classes, tol=40, fill=0.9):
    """Each box covers its block: the interior is the class colour and the box is the colour's extent."""
    assert len(boxes) == len(classes)
    for box, cls in zip(boxes, classes):
        x1, y1, x2, y2 = np.round(box).astype(int)
        if x2 - x1 <= 4 or y2 - y1 <= 4:
            continue
        inner = img[y1 + 2:y2 - 2, x1 + 2:x2 - 2].reshape(-1, 3).astype(int)  # 2 px: interpolated edges
        match = np.all(np.abs(inner - COLOURS[int(cls)]) < tol, axis=1)
        assert match.mean() > fill, (box, cls, match.mean())
    for cls, colour in COLOURS.items():  # no coloured pixels outside the boxes of that class
        mask = np.all(np.abs(img.astype(int) - colour) < 10, axis=2)
        for box, c in zip(boxes, classes):
            if c == cls:
                x1, y1, x2, y2 = box
                mask[max(0, int(y1) - 1):int(np.ceil(y2)) + 1, max(0, int(x1) - 1):int(np.ceil(x2)) + 1] = False
        # slack: slivers of blocks whose box box_candidates dropped (< 10 % of it left in the image)
        assert mask.sum() <= 60, (cls, mask.sum())


@pytest.fixture
def pipe(tmp_path):
    ann, images = make_coco(tmp_path, n=8)
    index = load_coco(ann, images)
    return Pipeline(index, (96, 128), AugmentConfig(**NO_COLOUR))


@pytest.mark.parametrize("seed", range(4))
def test_mosaic4_and_mosaic9_boxes_land_on_objects(pipe, seed):
    rng = np.random.default_rng(seed)
    for fn, n in ((mosaic4, 4), (mosaic9, 9)):
        lab = fn(pipe.load, rng.integers(0, 8, n).tolist(), rng, (96, 128))
        assert lab.img.shape == (192, 256, 3)
        assert_boxes_on_blocks(lab.img, lab.boxes, lab.classes)


@pytest.mark.parametrize("seed", range(4))
def test_warp_keeps_boxes_on_objects_with_and_without_segments(pipe, seed):
    rng = np.random.default_rng(seed)
    lab = mosaic4(pipe.load, [0, 1, 2, 3], rng, (96, 128))
    params = WarpParams(degrees=0, translate=0.1, scale=0.5)
    for segs in (lab.segments, []):
        img, boxes, classes = random_perspective(lab.img, lab.boxes, lab.classes, segs,
                                                 np.random.default_rng(seed), params, (96, 128))
        assert img.shape == (96, 128, 3)
        assert_boxes_on_blocks(img, boxes, classes, tol=60)


@pytest.mark.parametrize("seed", range(6))
def test_full_training_sample_without_colour_gains(pipe, seed):
    pipe.aug = AugmentConfig(**NO_COLOUR, mixup=0.0, paste_in=0.0, mosaic9=0.5)
    img, boxes, classes = pipe.train_sample(seed % 8, np.random.default_rng(seed))
    assert img.shape == (96, 128, 3) and boxes.dtype == np.float32
    assert_boxes_on_blocks(img, boxes, classes, tol=60)


def test_mixup_blends_and_concatenates(pipe):
    rng = np.random.default_rng(0)
    a = mosaic4(pipe.load, [0, 1, 2, 3], rng, (96, 128))
    b = mosaic4(pipe.load, [4, 5, 6, 7], rng, (96, 128))
    m = mixup(a, b, np.random.default_rng(1))
    r = np.random.default_rng(1).beta(8, 8)
    assert np.abs(m.img.astype(float) - (a.img * r + b.img * (1 - r))).max() <= 1
    assert len(m.boxes) == len(a.boxes) + len(b.boxes)


def test_paste_in_adds_boxes_on_pasted_objects(pipe):
    pipe.aug = AugmentConfig(**NO_COLOUR, mosaic=0.0, paste_in=1.0, fliplr=0.0, translate=0.0, scale=0.0)
    pipe.warp = WarpParams(translate=0.0, scale=0.0)
    added = 0
    for seed in range(5):
        img, boxes, classes = pipe.train_sample(seed, np.random.default_rng(seed))
        assert_boxes_on_blocks(img, boxes, classes, tol=60, fill=0.6)  # pastes may cover 30 % of a box
        added += len(boxes) - 1
    assert added > 0


def test_paste_in_without_polygons_warns_and_does_nothing(tmp_path, caplog):
    ann, images = make_coco(tmp_path, n=4, polygons=False)
    with caplog.at_level(logging.WARNING):
        pipe = Pipeline(load_coco(ann, images), (96, 128), AugmentConfig(paste_in=1.0))
    assert not pipe.paste_in_possible
    assert sum("no polygon segments" in r.getMessage() for r in caplog.records) == 1


def test_hsv_gains():
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert augment_hsv(img, np.random.default_rng(0), 0, 0, 0) is img
    out = augment_hsv(img, np.random.default_rng(0), 0.0, 0.0, 0.4)
    r = np.random.default_rng(0).uniform(-1, 1, 3)[2] * 0.4 + 1
    assert abs(out.max(axis=2).astype(float).mean() - np.clip(img.max(axis=2) * r, 0, 255).mean()) < 2


def test_box_candidates_thresholds():
    before = np.array([[0, 0, 10, 10]] * 4, np.float32)
    after = np.array([[0, 0, 10, 10], [0, 0, 2, 10], [0, 0, 3, 3], [0, 0, 9.9, 0.4]], np.float32)
    assert box_candidates(before, after, 0.1).tolist() == [True, False, False, False]
    assert box_candidates(before, after, 0.01).tolist() == [True, False, True, False]


def test_reproducible_by_seed(pipe):
    pipe.aug = AugmentConfig()
    a = pipe.train_sample(3, np.random.default_rng(42))
    b = pipe.train_sample(3, np.random.default_rng(42))
    c = pipe.train_sample(3, np.random.default_rng(43))
    assert (a[0] == b[0]).all() and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
