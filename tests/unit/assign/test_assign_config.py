"""The assigner and loss config groups compose and build the objects the paper describes."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from hydra import compose, initialize_config_dir

from tests.unit.assign.test_assigner_parity import geometry_of
from yolov7_lightning.assign import Assigner, HeadRule, check_heads
from yolov7_lightning.cli.paths import CONFIG_DIR
from yolov7_lightning.config import register_configs
from yolov7_lightning.loss import LossSpec, YOLOv7Loss
from yolov7_lightning.models import build_model
from yolov7_lightning.models.checkpoint_upgrades import upgrade_assigner as upgrade_legacy_config
from yolov7_lightning.specs import to_spec


def compose_with(*overrides):
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="info", overrides=list(overrides))


@pytest.mark.parametrize("name, aux_offset", [("coarse_to_fine", 1.0), ("lead_guided", 0.5), ("independent", 0.5)])
def test_assigner_group(name, aux_offset):
    cfg = compose_with(f"assigner={name}", "model=yolov7-tiny")
    assigner = to_spec(Assigner, cfg.assigner, "assigner")
    assert isinstance(assigner, Assigner) and assigner.strategy == name
    assert assigner.lead == HeadRule(0.5, 20) and assigner.aux == HeadRule(aux_offset, 20)
    assert cfg.model.aux_head is True  # the aux strategies bring the aux head, on a P5 variant too
    assert assigner.iou_weight == 3.0


@pytest.mark.parametrize("name, gains", [("yolov7", (0.05, 0.7, 0.3)), ("yolov7_tiny", (0.05, 1.0, 0.5))])
def test_loss_group(name, gains):
    cfg = compose_with(f"+loss={name}", "assigner=coarse_to_fine")
    spec = to_spec(LossSpec, cfg.loss, "loss")
    loss = YOLOv7Loss(num_classes=80, geometry=geometry_of("yolov7"),
                      assigner=to_spec(Assigner, cfg.assigner, "assigner"), **asdict(spec))
    assert (loss.box_gain, loss.obj_gain, loss.cls_gain) == pytest.approx(gains)
    assert (loss.aux_weight, loss.coarse_bound) == (0.25, "decoder")


def test_bad_strategy_lists_valid_names():
    with pytest.raises(ValueError, match="valid: lead_only, independent, lead_guided, coarse_to_fine"):
        Assigner(strategy="random")
    with pytest.raises(ValueError, match="valid: lead_only, independent"):
        Assigner(strategy="random")
    with pytest.raises(ValueError, match="valid: decoder, distance, none"):
        YOLOv7Loss(80, geometry_of("yolov7"), coarse_bound="tight")


@pytest.mark.parametrize("variant, strategy, aux_head", [
    ("yolov7-tiny", "lead_only", False), ("yolov7", "lead_only", False), ("yolov7x", "lead_only", False),
    ("yolov7-w6", "coarse_to_fine", True), ("yolov7-e6", "coarse_to_fine", True),
    ("yolov7-d6", "coarse_to_fine", True), ("yolov7-e6e", "coarse_to_fine", True)])
def test_each_variant_records_its_official_assigner(variant, strategy, aux_head):
    """The official recipes: P5 trains without the aux head (ComputeLossOTA), P6 with it (ComputeLossAuxOTA)."""
    cfg = compose_with(f"model={variant}")
    assert (cfg.assigner.strategy, cfg.model.aux_head) == (strategy, aux_head)
    cfg = compose_with(f"model={variant}", "assigner=lead_only")
    assert (cfg.assigner.strategy, cfg.model.aux_head) == ("lead_only", False)
    assert to_spec(Assigner, cfg.assigner, "assigner").lead == HeadRule(0.5, 10)  # the official lead-only top-k


def test_model_and_assigner_must_agree():
    tiny = build_model("yolov7-tiny", num_classes=3)
    heads = tiny.forward_heads(torch.zeros(1, 3, 64, 64))
    targets = torch.tensor([[0, 1, 32.0, 32.0, 20.0, 20.0]])
    with pytest.raises(ValueError, match="'coarse_to_fine' needs the auxiliary head.*choose assigner=lead_only"):
        Assigner(strategy="coarse_to_fine").with_geometry(tiny.detect.geometry)(heads, targets)
    with pytest.raises(ValueError, match="'lead_only' assigns the lead head only, but yolov7-tiny has the aux"):
        check_heads("lead_only", True, "yolov7-tiny")
    result = Assigner(strategy="lead_only", lead=HeadRule(0.5, 10)).with_geometry(tiny.detect.geometry)(heads, targets)
    assert result.aux is None and int(result.lead.assignment.positive.sum()) > 0


def test_legacy_checkpoint_config_records_what_ran():
    """Before lead_only was a strategy, a model without aux head ran lead-only OTA with the lead_only rule."""
    old = {"strategy": "coarse_to_fine", "lead": {"offset": 0.5, "topk": 20}, "lead_only": {"offset": 0.5, "topk": 10}}
    assert upgrade_legacy_config(old, aux_head=False) == {"strategy": "lead_only", "lead": {"offset": 0.5, "topk": 10}}
    assert upgrade_legacy_config(old, aux_head=True)["strategy"] == "coarse_to_fine"


def test_the_heads_are_checked_once_when_the_assigner_is_bound():
    """A network's geometry says whether it has the aux head: the assigner is checked when it is bound
    to it, before any call; a geometry without a network that does not say is checked at the first call."""
    from yolov7_lightning.models.head_geometry import HeadGeometry

    tiny, w6 = build_model("yolov7-tiny", num_classes=3), build_model("yolov7-w6", num_classes=3)
    assert (tiny.detect.geometry.aux_head, w6.detect.geometry.aux_head) == (False, True)
    with pytest.raises(ValueError, match="'coarse_to_fine' needs the auxiliary head"):
        Assigner(strategy="coarse_to_fine").with_geometry(tiny.detect.geometry)  # no call needed
    with pytest.raises(ValueError, match="'lead_only' assigns the lead head only"):
        Assigner(strategy="lead_only").with_geometry(w6.detect.geometry)
    assert Assigner(strategy="coarse_to_fine").with_geometry(w6.detect.geometry).aux_head is True
    bare = HeadGeometry.from_anchors(tiny.detect.geometry.anchors, tiny.detect.geometry.strides)
    told = HeadGeometry.from_anchors(tiny.detect.geometry.anchors, tiny.detect.geometry.strides, aux_head=False)
    with pytest.raises(ValueError, match="needs the auxiliary head"):
        Assigner(strategy="independent").with_geometry(told)
    unsaid = Assigner(strategy="independent").with_geometry(bare)
    assert unsaid.aux_head is None
    heads = tiny.forward_heads(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="needs the auxiliary head"):
        unsaid(heads, torch.tensor([[0, 1, 32.0, 32.0, 20.0, 20.0]]))
    lead = Assigner(strategy="lead_only").with_geometry(bare)
    lead(heads, torch.tensor([[0, 1, 32.0, 32.0, 20.0, 20.0]]))
    assert lead.aux_head is False  # checked at its first call, not again
