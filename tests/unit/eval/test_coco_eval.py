"""COCO evaluation of known predictions against hand-checked numbers, on both backends."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolov7_lightning.data import ImageMeta
from yolov7_lightning.data.letterbox import letterbox
from yolov7_lightning.eval import COCO_METRICS, CocoEvaluator, format_per_class, make_evaluator

from .conftest import CATEGORY_IDS, NAMES, coco_gt, det, identity_meta

ONE_BOX = coco_gt({1: (480, 640)}, [(1, 3, [0, 0, 100, 100], 0)])


def evaluate(backend, gt, per_image: dict[int, torch.Tensor]) -> dict:
    ev = make_evaluator(backend, gt, CATEGORY_IDS)
    ev.update(list(per_image.values()), [identity_meta(i) for i in per_image])
    return ev.compute()


def test_perfect_predictions_score_one(backend):
    anns = [(1, 3, [10, 10, 20, 20], 0), (1, 7, [100, 100, 50, 50], 0), (1, 3, [200, 200, 120, 120], 0),
            (2, 7, [0, 0, 300, 200], 0)]  # small, medium, large, large
    gt = coco_gt({1: (480, 640), 2: (480, 640)}, anns)
    preds = {i: det(*[[*b, 0.9, CATEGORY_IDS.index(c)] for j, c, b, _ in anns if j == i]) for i in (1, 2)}
    out = evaluate(backend, gt, preds)
    for key in COCO_METRICS:
        if key != "mar_1":
            assert out[key] == pytest.approx(1.0, abs=1e-6), key
    # maxDets=1 per image and class: one of the two cats of image 1 is found (recall 1/2), both dogs
    assert out["mar_1"] == pytest.approx((0.5 + 1.0) / 2, abs=1e-6)
    assert out["per_class"] == pytest.approx({"cat": 1.0, "dog": 1.0})
    assert out["num_images"] == 2 and out["num_detections"] == 4


@pytest.mark.parametrize("height, passed", [(82.0, 7), (72.5, 5)])
def test_iou_between_thresholds_passes_a_known_fraction(backend, height, passed):
    # prediction inside its 100x100 ground truth: IoU = height / 100 (0.82 passes 0.50..0.80,
    # 7 of the 10 thresholds; 0.725 passes 0.50..0.70, 5 of 10)
    out = evaluate(backend, ONE_BOX, {1: det([0, 0, 100, height, 0.9, 0])})
    assert out["map50"] == pytest.approx(1.0, abs=1e-6)
    assert out["map"] == pytest.approx(passed / 10, abs=1e-6)
    assert out["map75"] == pytest.approx(1.0 if height / 100 >= 0.75 else 0.0, abs=1e-6)
    assert out["mar_100"] == pytest.approx(passed / 10, abs=1e-6)
    assert out["map_large"] == pytest.approx(passed / 10, abs=1e-6)  # area 10000 > 96**2
    assert out["map_small"] == -1.0 and out["map_medium"] == -1.0  # no ground truth there
    assert out["per_class"] == pytest.approx({"cat": passed / 10, "dog": -1.0})


def test_false_positive_above_the_true_positive_halves_ap50(backend):
    alone = evaluate(backend, ONE_BOX, {1: det([0, 0, 100, 100, 0.8, 0])})
    # the false positive (no overlap) ranks first: precision 1/2 at recall 1, envelope 0.5 everywhere
    fp_first = evaluate(backend, ONE_BOX, {1: det([300, 300, 50, 50, 0.9, 0], [0, 0, 100, 100, 0.8, 0])})
    assert alone["map50"] == pytest.approx(1.0, abs=1e-6)
    assert fp_first["map50"] == pytest.approx(0.5, abs=1e-6)
    assert fp_first["mar_1"] == pytest.approx(0.0, abs=1e-6)  # maxDets=1 keeps only the false positive
    assert fp_first["mar_10"] == pytest.approx(1.0, abs=1e-6)


def test_false_positive_between_two_true_positives(backend):
    # two ground truths; TP 0.9, FP 0.8, TP 0.7 -> PR points (R .5, P 1), (.5, .5), (1, 2/3);
    # envelope 1 for the 51 recall thresholds <= 0.5 and 2/3 for the 50 above
    gt = coco_gt({1: (480, 640)}, [(1, 3, [0, 0, 100, 100], 0), (1, 3, [200, 200, 100, 100], 0)])
    preds = det([0, 0, 100, 100, 0.9, 0], [400, 400, 50, 50, 0.8, 0], [200, 200, 100, 100, 0.7, 0])
    out = evaluate(backend, gt, {1: preds})
    expected = (51 * 1.0 + 50 * 2 / 3) / 101
    assert out["map50"] == pytest.approx(expected, abs=1e-6)
    assert out["map"] == pytest.approx(expected, abs=1e-6)  # exact boxes: same at every IoU


@pytest.mark.parametrize("crowd, expected", [(1, 1.0), (0, 34 * 0.5 / 101)])
def test_crowd_ground_truth_is_ignored(backend, crowd, expected):
    # a detection inside a crowd region (scored above the true positive) is neither a false
    # positive nor are the crowd regions misses. As plain boxes: 3 ground truths, FP then TP ->
    # precision 1/2 up to recall 1/3 (34 of the 101 recall thresholds), 0 beyond
    gt = coco_gt({1: (480, 640), 2: (480, 640)},
                 [(1, 3, [0, 0, 100, 100], 0), (1, 3, [200, 200, 200, 200], crowd), (2, 3, [0, 0, 50, 50], crowd)])
    preds = {1: det([250, 250, 50, 50, 0.95, 0], [0, 0, 100, 100, 0.9, 0]), 2: det()}
    out = evaluate(backend, gt, preds)
    assert out["map50"] == pytest.approx(expected, abs=1e-6)


def test_no_detections_give_zero_without_error(backend, tmp_path):
    ev = make_evaluator(backend, ONE_BOX, CATEGORY_IDS)
    ev.update([det()], [identity_meta(1)])
    out = ev.compute()
    assert out["map"] == 0.0 and out["map50"] == 0.0 and out["mar_100"] == 0.0
    assert out["num_images"] == 1 and out["num_detections"] == 0
    assert json.loads(ev.save_json(tmp_path / "r.json").read_text()) == []


def test_nothing_evaluated_gives_undefined(backend):
    out = make_evaluator(backend, ONE_BOX, CATEGORY_IDS).compute()
    assert all(out[k] == -1.0 for k in COCO_METRICS)
    assert out["per_class"] == {"cat": -1.0, "dog": -1.0}
    assert "Average Precision" in out["summary"]


def test_only_evaluated_images_count(backend):
    gt = coco_gt({1: (480, 640), 2: (480, 640)}, [(1, 3, [0, 0, 100, 100], 0), (2, 3, [0, 0, 100, 100], 0)])
    assert evaluate(backend, gt, {1: det([0, 0, 100, 100, 0.9, 0])})["map"] == pytest.approx(1.0, abs=1e-6)
    both = evaluate(backend, gt, {1: det([0, 0, 100, 100, 0.9, 0]), 2: det()})
    assert both["mar_100"] == pytest.approx(0.5, abs=1e-6)


def test_letterbox_meta_maps_boxes_back_to_the_original():
    _, lb = letterbox(np.zeros((100, 200, 3), np.uint8), (320, 320))
    assert lb.ratio_hw == (1.6, 1.6) and lb.pad_tl == (80, 0)
    meta = ImageMeta(1, Path("1.jpg"), lb.orig_hw, lb.input_hw, lb.ratio_hw, lb.pad_tl)
    orig = np.array([[20, 10, 120, 60]], np.float32)
    inp = torch.from_numpy(lb.to_input(orig))
    torch.testing.assert_close(inp, torch.tensor([[32.0, 96.0, 192.0, 176.0]]))
    spill = torch.tensor([[300.0, 60.0, 330.0, 250.0]])  # reaches into the padding: clipped
    gt = coco_gt({1: (100, 200)}, [(1, 7, [20, 10, 100, 50], 0)])
    ev = CocoEvaluator(gt, CATEGORY_IDS)
    ev.update([torch.cat((torch.cat((inp, spill)), torch.tensor([[0.9, 1], [0.5, 0]])), 1)], [meta])
    boxes = [r["bbox"] for r in ev.results()]
    assert boxes == [pytest.approx([20, 10, 100, 50]), pytest.approx([187.5, 0, 12.5, 100])]
    assert [r["category_id"] for r in ev.results()] == [7, 3]
    assert ev.compute()["map"] == pytest.approx(1.0, abs=1e-6)


def test_results_json_is_rounded_and_matches_pycocotools_on_the_file(tmp_path):
    gt = coco_gt({1: (480, 640)}, [(1, 7, [10, 20, 100, 80], 0), (1, 3, [300, 300, 60, 60], 0)])
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps(gt))
    ev = CocoEvaluator(gt_file, CATEGORY_IDS)
    ev.update([det([10.12345, 20.98765, 95.5, 80, 0.123456789, 1], [302, 298, 60, 58, 0.7, 0],
                   [500, 10, 30, 30, 0.3, 1])], [identity_meta(1)])
    path = ev.save_json(tmp_path / "out" / "results.json")
    results = json.loads(path.read_text())
    assert results[0] == {"image_id": 1, "category_id": 7, "bbox": [10.123, 20.988, 95.5, 80.0], "score": 0.12346}
    with contextlib.redirect_stdout(io.StringIO()):  # the official recipe on the written file
        coco = COCO(str(gt_file))
        official = COCOeval(coco, coco.loadRes(str(path)), "bbox")
        official.evaluate(), official.accumulate(), official.summarize()
    out = ev.compute()
    assert [out[k] for k in COCO_METRICS] == pytest.approx(list(official.stats), abs=1e-12)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in out["summary"]


def test_per_class_ap_names_and_table():
    gt = coco_gt({1: (480, 640)}, [(1, 3, [0, 0, 100, 100], 0), (1, 7, [200, 200, 100, 100], 0)])
    out = evaluate("pycocotools", gt, {1: det([0, 0, 100, 100, 0.9, 0], [200, 200, 100, 72.5, 0.9, 1])})
    assert out["per_class"] == pytest.approx({"cat": 1.0, "dog": 0.5})
    assert out["per_class_map50"] == pytest.approx({"cat": 1.0, "dog": 1.0})
    assert out["map"] == pytest.approx(0.75)
    table = format_per_class(out["per_class"], out["per_class_map50"]).splitlines()
    assert table[1].split() == ["cat", "1.000", "1.000"] and table[2].split() == ["dog", "0.500", "1.000"]
    renamed = CocoEvaluator(gt, CATEGORY_IDS, names=["a", "a"])  # repeated names fall back to ids
    assert renamed.class_keys == ["3", "7"]


def test_duplicate_images_count_once_and_reset_clears():
    ev = CocoEvaluator(ONE_BOX, CATEGORY_IDS)
    ev.update([det([0, 0, 100, 100, 0.9, 0])], [identity_meta(1)])
    ev.update([det([300, 300, 50, 50, 0.95, 0])], [identity_meta(1)])  # e.g. DistributedSampler padding
    assert ev.num_detections == 1 and ev.compute()["map"] == pytest.approx(1.0)
    ev.reset()
    assert ev.image_ids == [] and ev.results() == []


def test_bad_inputs_are_reported():
    ev = CocoEvaluator(ONE_BOX, CATEGORY_IDS)
    with pytest.raises(ValueError, match="image id 5 is not in the ground truth"):
        ev.update([det()], [identity_meta(5)])
    with pytest.raises(ValueError, match="class ids out of range"):
        ev.update([det([0, 0, 1, 1, 0.5, 2])], [identity_meta(1)])
    with pytest.raises(ValueError, match="2 detection tensors for 1 images"):
        ev.update([det(), det()], [identity_meta(1)])
    augmented = ImageMeta(1, Path("1.jpg"), (480, 640), (640, 640))
    with pytest.raises(ValueError, match="augmented sample"):
        ev.update([det()], [augmented])
    with pytest.raises(ValueError, match="unknown evaluation backend"):
        make_evaluator("nope", ONE_BOX, CATEGORY_IDS)


def test_ground_truth_is_not_modified_and_area_is_filled():
    gt = {"images": [{"id": 1, "height": 10, "width": 10}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 4, 5]}],
          "categories": [{"id": 3, "name": "cat"}]}
    ev = CocoEvaluator(gt, [3])
    assert "area" not in gt["annotations"][0]
    assert ev.gt["annotations"][0]["area"] == 20.0 and ev.gt["annotations"][0]["iscrowd"] == 0
    ev.update([det([0, 0, 4, 5, 0.9, 0])], [identity_meta(1, 10, 10)])
    assert ev.compute()["map"] == pytest.approx(1.0)
    assert NAMES[0] == ev.class_keys[0]
