"""freeze: frozen parameters leave the optimizer groups and stay equal over a step; their BN
statistics too; single_cls turns every box into class 0 of one 'item' class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from yolov7_lightning.data.records import DatasetIndex, ImageRecord, LoadReport, single_class
from yolov7_lightning.training.freeze import frozen_modules
from yolov7_lightning.training.module import YOLOv7Module


def module(freeze):
    return YOLOv7Module(model={"_target_": "yolov7_lightning.models.build_model", "variant": "yolov7-tiny",
                               "num_classes": 2},
                        loss={"_target_": "yolov7_lightning.loss.YOLOv7Loss", "_partial_": True},
                        assigner={"_target_": "yolov7_lightning.assign.Assigner", "strategy": "lead_only"}, optim={"name": "sgd", "lr0": 0.1},
                        schedule={}, image_size=64, batch_size=2, freeze=freeze)


def test_frozen_weights_and_bn_statistics_survive_a_step():
    m = module(["backbone"])
    opt = m.configure_optimizers()
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    frozen = {id(p) for p in m.model.backbone.parameters()}
    assert frozen and not (frozen & in_opt) and len(in_opt) == sum(1 for p in m.model.parameters() if p.requires_grad)
    before = {k: v.clone() for k, v in m.model.state_dict().items()}
    m.train()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([[0, 1, 20.0, 20, 16, 12], [1, 0, 40, 30, 20, 24]])
    m.loss_fn(m.model(images), targets).total.backward()
    opt.step()
    after = m.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith("backbone.") for k in changed)  # weights and running statistics
    assert any(k.startswith("neck.") and k.endswith("running_mean") for k in changed)
    assert any(k.startswith("neck.") and k.endswith(".weight") for k in changed)


def test_freeze_by_official_layer_count_and_bad_names():
    m = module(None).model
    n29 = {id(p) for mod in frozen_modules(m, 29) for p in mod.parameters()}
    assert n29 == {id(p) for p in m.backbone.parameters()}  # yolov7-tiny's backbone is official layers 0-28
    with pytest.raises(ValueError, match="'bakbone' is not a module of yolov7-tiny"):
        frozen_modules(m, "bakbone")
    with pytest.raises(ValueError, match="layers asked"):
        frozen_modules(m, 500)


def test_single_class_index():
    rec = ImageRecord(1, Path("a.jpg"), 10, 10, np.array([[0, 0, 5, 5], [1, 1, 4, 4]], np.float32),
                      np.array([0, 3]), [np.zeros((0, 2))] * 2)
    idx = single_class(DatasetIndex([rec], ["a", "b", "c", "d"], [1, 2, 3, 4], LoadReport("x")))
    assert idx.names == ["item"] and idx.category_ids == [1] and idx.records[0].classes.tolist() == [0, 0]
    assert rec.classes.tolist() == [0, 3]  # the source index is left as it was
