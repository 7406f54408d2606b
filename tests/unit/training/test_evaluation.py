"""Evaluation passes return their result (training/evaluation.py): EvalResult's scalars, tables, speed
and class mAPs; settings given (EvalSettings, set_evaluation), never edited in place; a validation
pass through Lightning gives the numbers of evaluating the same network by hand."""

from __future__ import annotations

import dataclasses

import lightning as L
import pytest
import torch

from tests.helpers import randomise_statistics
from tests.unit.data.conftest import make_coco
from tests.unit.export.test_export import spread_head
from yolov7_lightning.data import YoloDataModule
from yolov7_lightning.eval import make_evaluator, non_max_suppression
from yolov7_lightning.training.evaluation import EvalResult, EvalSettings, EvalSpeed, evaluate, fitness
from yolov7_lightning.training.module import YOLOv7Module

COCO = {"map": 0.25, "map50": 0.5, "map75": 0.2, "map_small": -1.0, "map_medium": 0.1, "map_large": 0.3,
        "mar_1": 0.1, "mar_10": 0.2, "mar_100": 0.3, "mar_small": -1.0, "mar_medium": 0.2, "mar_large": 0.4}


def test_result_from_an_evaluators_compute():
    metrics = {**COCO, "per_class": {"a": 0.5, "b": -1.0, "c": 0.0}, "per_class_map50": {"a": 0.75, "b": -1.0,
                                                                                         "c": 0.0},
               "summary": "table", "num_images": 4, "num_detections": 17}
    r = EvalResult.from_metrics("val", metrics, EvalSpeed(inference=0.5, nms=0.25, images=10))
    assert list(r.scalars) == [*COCO, "num_images", "num_detections", "fitness"]  # compute()'s order, fitness last
    assert r.scalars["num_images"] == 4 and isinstance(r.scalars["num_images"], int)
    assert r.fitness == pytest.approx(0.1 * 0.5 + 0.9 * 0.25) == fitness(COCO)
    assert (r.map, r.map50, r.summary, r.split) == (0.25, 0.5, "table", "val")
    assert r.floats() == {**COCO, "fitness": r.fitness}  # what metrics.json keeps of a test pass
    assert r.per_class_map50 == {"a": 0.75, "b": -1.0, "c": 0.0}
    assert r.class_maps() == [0.5, 0.25, 0.0]  # a class without ground truth takes the overall mAP
    assert r.speed.per_image_ms() == pytest.approx({"inference_ms": 50.0, "nms_ms": 25.0, "total_ms": 75.0})
    assert EvalResult.from_metrics("val", {**metrics, "map": -1.0}).class_maps() == [0.5, 0.0, 0.0]
    assert EvalSpeed().per_image_ms() == {"inference_ms": 0.0, "nms_ms": 0.0, "total_ms": 0.0}


def test_settings_are_given_not_edited():
    s = EvalSettings.from_config({"backend": "torchmetrics", "conf_thres": 0.25, "predict_conf": 0.5})
    assert (s.backend, s.conf_thres, s.iou_thres, s.max_det, s.multi_label, s.augment) == \
        ("torchmetrics", 0.25, 0.65, 300, True, False)  # an older checkpoint's predict_conf is not the evaluation's
    with pytest.raises(ValueError, match=r"unknown key\(s\) evaluation.conf_thresh; valid keys of evaluation: backend"):
        EvalSettings.from_config({"conf_thresh": 0.25})
    t = s.updated({"iou_thres": 0.45}, augment=True)
    assert (t.conf_thres, t.iou_thres, t.augment) == (0.25, 0.45, True) and not s.augment
    assert EvalSettings.from_config(None) == EvalSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.augment = True
    assert s.nms_kwargs() == {"conf_thres": 0.25, "iou_thres": 0.65, "max_det": 300, "multi_label": True}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    ann, images = make_coco(root, n=6)
    split = {"images": images.name, "annotations": ann.name}
    dm = YoloDataModule(source={"kind": "coco", "root": str(root), "splits": {"train": split, "val": split}},
                        img_size=64, batch_size=2, val_batch_size=4)
    module = YOLOv7Module(model={"_target_": "yolov7_lightning.models.build_model", "variant": "yolov7-tiny",
                                 "num_classes": 4},
                          loss={"_target_": "yolov7_lightning.loss.YOLOv7Loss", "_partial_": True},
                          assigner={"_target_": "yolov7_lightning.assign.Assigner", "strategy": "lead_only"},
                          optim={}, schedule={}, evaluation={"conf_thres": 0.001, "iou_thres": 0.65},
                          image_size=64, batch_size=2)
    torch.manual_seed(0)
    spread_head(randomise_statistics(module.model))  # scores spread: detections at conf 0.001
    return dm, module


class Listener(L.Callback):
    """A callback that takes the results the module hands out."""

    def __init__(self):
        self.results = []

    def on_eval_result(self, trainer, pl_module, result):
        self.results.append(result)


def trainer(*callbacks: L.Callback) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, callbacks=list(callbacks))


def test_a_validation_pass_returns_the_numbers_of_the_same_evaluation_by_hand(setup):
    dm, module = setup
    assert module.class_maps is None and not hasattr(module, "eval_result")  # results are handed out, not kept
    listener = Listener()
    result = evaluate(runner := trainer(listener), module, dm, "val")
    assert len(listener.results) == 1 and listener.results[0] is result and result.split == "val"
    assert runner.callbacks.count(listener) == 1 and not any(type(c).__name__ == "_KeepResult" for c in runner.callbacks)
    evaluator = make_evaluator("pycocotools", index=dm.dataset("val").index)
    model = module.model.eval()
    with torch.no_grad():
        for batch in dm.val_dataloader():
            pred = model(batch["images"].contiguous(memory_format=torch.channels_last))
            evaluator.update(non_max_suppression(pred, 0.001, 0.65, multi_label=True, max_det=300), batch["meta"])
    want = evaluator.compute()
    assert want["num_detections"] > 0 and result.scalars["num_images"] == 6
    assert result.scalars == {**{k: v for k, v in want.items() if isinstance(v, (int, float))},
                              "fitness": fitness(want)}
    assert result.per_class == want["per_class"] and result.summary == want["summary"]
    assert result.speed.images == 6 and result.speed.inference > 0 and result.speed.nms > 0
    assert result.detections.num_detections == want["num_detections"]
    assert module.class_maps == result.class_maps() and len(module.class_maps) == 4  # image weights

    module.class_maps = [0.5] * 4
    test = evaluate(trainer(), module, dm, "test")  # no test split: the val images; class_maps kept
    assert test.split == "test" and test.scalars == result.scalars and module.class_maps == [0.5] * 4

    before = module.eval_settings
    module.set_evaluation(before.updated(augment=True))  # yolov7-eval tta=true
    tta = evaluate(trainer(), module, dm, "val")
    assert not before.augment and module.eval_settings.augment
    # three views merged by NMS: other detections (the count alone can saturate at max_det per image)
    assert tta.detections.results() != result.detections.results()
