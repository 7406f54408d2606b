"""The assigner and loss config groups compose and build the objects the paper describes."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from yolov7_lightning.assign import Assigner, HeadRule
from yolov7_lightning.cli.paths import CONFIG_DIR
from yolov7_lightning.config import register_configs


def compose_with(*overrides):
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="info", overrides=list(overrides))


@pytest.mark.parametrize("name, aux_offset", [("coarse_to_fine", 1.0), ("lead_guided", 0.5), ("independent", 0.5)])
def test_assigner_group(name, aux_offset):
    assigner = instantiate(compose_with(f"+assigner={name}").assigner)
    assert isinstance(assigner, Assigner) and assigner.strategy == name
    assert assigner.lead == HeadRule(0.5, 20) and assigner.aux == HeadRule(aux_offset, 20)
    assert assigner.lead_only == HeadRule(0.5, 10)
    assert (assigner.iou_weight, assigner.aux_weight, assigner.coarse_bound) == (3.0, 0.25, "decoder")


@pytest.mark.parametrize("name, gains", [("yolov7", (0.05, 0.7, 0.3)), ("yolov7_tiny", (0.05, 1.0, 0.5))])
def test_loss_group(name, gains):
    cfg = compose_with(f"+loss={name}", "+assigner=coarse_to_fine")
    loss = instantiate(cfg.loss)(num_classes=80, strides=[8, 16, 32], assigner=instantiate(cfg.assigner))
    assert (loss.box_gain, loss.obj_gain, loss.cls_gain) == pytest.approx(gains)


def test_bad_strategy_lists_valid_names():
    with pytest.raises(ValueError, match="valid: independent, lead_guided, coarse_to_fine"):
        Assigner(strategy="random")
    with pytest.raises(ValueError, match="valid: decoder, distance, none"):
        Assigner(coarse_bound="tight")
