"""The typed specs: what YOLOv7Module builds from the hyper-parameters of an older checkpoint
(``_target_`` keys, ``aux_weight``/``coarse_bound`` under the assigner, the legacy ``lead_only``
rule), the error for an unknown key, and the specs as the config groups' schemas."""

from __future__ import annotations

import io

import pytest
import torch
from hydra.errors import ConfigCompositionException

from yolov7_lightning.assign import Assigner, HeadRule
from yolov7_lightning.loss import LossSpec
from yolov7_lightning.models import ModelSpec, ScalingSpec
from yolov7_lightning.specs import to_spec
from yolov7_lightning.training.module import YOLOv7Module
from yolov7_lightning.training.optim import OptimSpec, ScheduleSpec
from yolov7_lightning.training.specs import module_specs

SCALING = {"mode": "none", "width": 1.0, "depth": 1.0}


def old_hparams(variant: str = "yolov7-tiny", aux_head=None) -> dict:
    """A module's hyper-parameters as checkpoints recorded them before the specs."""
    return {
        "model": {"_target_": "yolov7_lightning.models.build_model", "variant": variant, "num_classes": 2,
                  "aux_head": aux_head, "repconv": "planned", "weights": "start.pt", "weights_partial": True,
                  "scaling": SCALING},
        "loss": {"_target_": "yolov7_lightning.loss.YOLOv7Loss", "_partial_": True, "box": 0.05, "obj": 1.0,
                 "cls": 0.5, "balance": None, "label_smoothing": 0.0},
        "assigner": {"_target_": "yolov7_lightning.assign.Assigner", "strategy": "coarse_to_fine",
                     "lead": {"offset": 0.5, "topk": 20}, "aux": {"offset": 1.0, "topk": 20},
                     "lead_only": {"offset": 0.5, "topk": 10}, "iou_weight": 3.0, "cls_weight": 1.0,
                     "anchor_t": 4.0, "cross_gt": True, "coarse_bound": "distance", "aux_weight": 0.5},
        "optim": {"name": "sgd", "lr0": 0.02, "momentum": 0.9},
        "schedule": {"kind": "linear", "epochs": 5},
        "image_size": 64, "batch_size": 2, "names": ["a", "b"], "channels_last": False,
    }


def test_old_checkpoint_hparams_build_the_run_they_recorded():
    module = YOLOv7Module(**old_hparams())
    want_loss = LossSpec(obj=1.0, cls=0.5, aux_weight=0.5, coarse_bound="distance")  # moved from the assigner
    want_assigner = Assigner("lead_only", lead=HeadRule(0.5, 10), aux=HeadRule(1.0, 20))  # no aux head: lead-only OTA
    want = module_specs(ModelSpec("yolov7-tiny", num_classes=2), want_loss, want_assigner,
                        OptimSpec(lr0=0.02, momentum=0.9), ScheduleSpec(kind="linear", epochs=5))
    assert module.loss_fn.assigner == want.assigner
    assert (module.loss_fn.aux_weight, module.loss_fn.coarse_bound) == (0.5, "distance")
    assert (module.optim, module.schedule) == (want.optim, want.schedule)
    assert not module.model.aux_head and module.model.num_classes == 2
    hp = dict(module.hparams)
    assert {k: hp[k] for k in want.hparams()} == want.hparams()  # plain dicts, no _target_, no weights
    assert hp["model"]["scaling"] == SCALING and "weights" not in hp["model"]
    buffer = io.BytesIO()
    torch.save({"hyper_parameters": hp}, buffer)
    buffer.seek(0)
    again = YOLOv7Module(**torch.load(buffer, weights_only=True)["hyper_parameters"])  # a resaved checkpoint
    assert dict(again.hparams) == hp and again.loss_fn.assigner == want.assigner


def test_old_aux_head_checkpoint_keeps_its_strategy():
    specs = module_specs(**{k: v for k, v in old_hparams("yolov7-w6").items()
                            if k in ("model", "loss", "assigner", "optim", "schedule")})
    assert specs.model == ModelSpec("yolov7-w6", num_classes=2, scaling=ScalingSpec())
    assert (specs.assigner.strategy, specs.assigner.lead) == ("coarse_to_fine", HeadRule(0.5, 20))
    assert (specs.loss.aux_weight, specs.loss.coarse_bound) == (0.5, "distance")


def test_unknown_key_names_the_group_and_the_key():
    hp = old_hparams()
    with pytest.raises(ValueError, match=r"unknown key 'optim.lr'; valid keys of optim: name, lr0, momentum"):
        YOLOv7Module(**{**hp, "optim": {"lr": 0.1}})
    with pytest.raises(ValueError, match=r"unknown key 'model.scaling.wdth'"):
        YOLOv7Module(**{**hp, "model": {**hp["model"], "scaling": {"mode": "width", "wdth": 2.0}}})
    with pytest.raises(ValueError, match=r"unknown key 'loss.coarse_bond'"):
        to_spec(LossSpec, {"coarse_bond": "none"}, "loss")


def test_the_specs_are_the_schemas():
    from tests.unit.assign.test_assign_config import compose_with

    cfg = compose_with("+loss=yolov7_tiny", "+optim=sgd", "+schedule=scratch_p6", "model=yolov7-w6")
    assert to_spec(LossSpec, cfg.loss, "loss") == LossSpec(obj=1.0, cls=0.5)
    assert to_spec(OptimSpec, cfg.optim, "optim") == OptimSpec()
    assert to_spec(ScheduleSpec, cfg.schedule, "schedule") == ScheduleSpec(lrf=0.2)
    assert "_target_" not in cfg.assigner and "coarse_bound" not in cfg.assigner and "_target_" not in cfg.model
    for key, schema in (("loss.coarse_bond", "LossSpec"), ("assigner.aux_weight", "Assigner"),
                        ("model.weight", "ModelConfig")):  # a typo, or a key that moved, fails at composition
        with pytest.raises(ConfigCompositionException) as e:
            compose_with("+loss=yolov7", f"{key}=1")
        assert f"Key '{key.split('.')[1]}' not in '{schema}'" in str(e.value.__cause__), e.value.__cause__
