"""The table of strategies and heads: the config's ``model.aux_head`` and the heads check read it,
and a mismatch stops when the specs are built, before a network exists."""

from __future__ import annotations

import pytest

from tests.unit.assign.test_assign_config import compose_with
from yolov7_lightning.assign import STRATEGIES, check_heads
from yolov7_lightning.loss import LossSpec
from yolov7_lightning.models import ModelSpec
from yolov7_lightning.training.optim import OptimSpec, ScheduleSpec
from yolov7_lightning.training.specs import module_specs

# the paper's strategies and the official loss_ota: 0 (plain): the aux head each gives the model
AUX_HEAD = {"lead_only": False, "independent": True, "lead_guided": True, "coarse_to_fine": True, "plain": False}


def test_the_table_holds_every_strategy():
    assert set(STRATEGIES) == set(AUX_HEAD)


@pytest.mark.parametrize("strategy", list(AUX_HEAD))
def test_config_aux_head_follows_the_strategy(strategy):
    for variant in ("yolov7-tiny", "yolov7-w6"):  # P5 and P6: the strategy decides, not the variant
        cfg = compose_with(f"model={variant}", f"assigner={strategy}")
        assert cfg.model.aux_head is AUX_HEAD[strategy]


def specs_of(variant, aux_head, strategy):
    return module_specs(ModelSpec(variant=variant, num_classes=3, aux_head=aux_head), LossSpec(),
                        {"strategy": strategy}, OptimSpec(), ScheduleSpec())


@pytest.mark.parametrize("strategy, aux_head, message", [
    ("lead_only", True, "assigner 'lead_only' assigns the lead head only, but yolov7-tiny has the auxiliary head"),
    ("coarse_to_fine", False, "assigner 'coarse_to_fine' needs the auxiliary head, but yolov7-tiny has none"),
    ("lead_guided", False, "assigner 'lead_guided' needs the auxiliary head.*choose assigner=lead_only$"),
    ("independent", False, "assigner 'independent' needs the auxiliary head"),
])
def test_mismatch_stops_when_the_specs_are_built(strategy, aux_head, message):
    with pytest.raises(ValueError, match=message):
        specs_of("yolov7-tiny", aux_head, strategy)
    with pytest.raises(ValueError, match=message.split(",")[0]):
        check_heads(strategy, aux_head, "yolov7-tiny")


def test_unset_aux_head_is_the_variants_default():
    """``aux_head: null`` (a spec built in Python): P5 has none, P6 has one; the check sees that."""
    assert specs_of("yolov7-tiny", None, "lead_only").assigner.strategy == "lead_only"
    assert specs_of("yolov7-w6", None, "coarse_to_fine").assigner.strategy == "coarse_to_fine"
    with pytest.raises(ValueError, match="'coarse_to_fine' needs the auxiliary head, but yolov7-tiny has none"):
        specs_of("yolov7-tiny", None, "coarse_to_fine")
    with pytest.raises(ValueError, match="'lead_only' assigns the lead head only, but yolov7-w6 has the aux"):
        specs_of("yolov7-w6", None, "lead_only")


@pytest.mark.parametrize("aux_head", [False, True])
def test_plain_works_with_either_head(aux_head):
    assert specs_of("yolov7-tiny", aux_head, "plain").assigner.strategy == "plain"
