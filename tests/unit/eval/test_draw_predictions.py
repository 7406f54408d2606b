"""Drawing detections and the prediction records of yolov7-predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from yolov7_lightning.data import ImageMeta
from yolov7_lightning.eval import draw_detections, prediction_records, save_predictions
from yolov7_lightning.eval.draw import class_color


def test_draw_boxes_in_class_colours_without_touching_the_input():
    img = np.zeros((120, 160, 3), np.uint8)
    dets = torch.tensor([[20.0, 40.0, 100.0, 110.0, 0.9, 1.0]])
    out = draw_detections(img, dets, ["cat", "dog"], line_width=2)
    assert out.shape == (120, 160, 3) and out.dtype == np.uint8
    assert img.max() == 0  # input untouched
    assert tuple(out[110, 60]) == class_color(1)  # bottom edge of the box
    assert tuple(out[80, 20]) == class_color(1)  # left edge
    assert out[80, 60].max() == 0  # inside the box: untouched
    assert (out[25:40, 20:60] != 0).any()  # the label sits above the box


def test_draw_accepts_chw_float_tensors_and_no_detections():
    chw = torch.full((3, 50, 60), 0.5)
    out = draw_detections(chw, torch.zeros(0, 6), None)
    assert out.shape == (50, 60, 3) and (out == 128).all()
    labelled = draw_detections(chw, np.array([[0, 0, 30, 30, 0.5, 7]]), None)  # class id when no names
    assert (labelled != 128).any()
    with pytest.raises(ValueError, match="HxWx3 or 3xHxW"):
        draw_detections(np.zeros((10, 10)), np.zeros((0, 6)))


def test_prediction_records_in_original_pixels(tmp_path):
    meta = ImageMeta(42, Path("imgs/a.jpg"), (100, 200), (320, 320), (1.6, 1.6), (80, 0))
    dets = torch.tensor([[32.0, 96.0, 192.0, 176.0, 0.87654321, 1.0], [0.0, 0.0, 16.0, 88.0, 0.5, 0.0]])
    (rec,) = prediction_records([dets], [meta], names=["cat", "dog"], category_ids=[3, 7])
    assert rec["image_id"] == 42 and rec["file"] == str(Path("imgs/a.jpg"))
    assert (rec["height"], rec["width"]) == (100, 200)
    assert rec["boxes"] == [[20.0, 10.0, 120.0, 60.0], [0.0, 0.0, 10.0, 5.0]]  # 2nd: clipped at the top
    assert rec["scores"] == [0.87654, 0.5] and rec["classes"] == [1, 0]
    assert rec["names"] == ["dog", "cat"] and rec["category_ids"] == [7, 3]
    path = save_predictions([rec], tmp_path / "p" / "predictions.json")
    assert json.loads(path.read_text()) == [rec]
    (bare,) = prediction_records([torch.zeros(0, 6)], [meta])
    assert bare["boxes"] == [] and "names" not in bare
