"""The specs ``YOLOv7Module`` is built from, out of what its caller gives: the specs themselves, the
config dicts Hydra composes, or the hyper-parameters of a checkpoint (older ones upgraded)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, NamedTuple

from ..assign import Assigner, check_heads
from ..loss import LossSpec
from ..models import ModelSpec, get_arch
from ..models.checkpoint_upgrades import upgrade_hparams
from ..specs import to_spec
from .optim import OptimSpec, ScheduleSpec


class ModuleSpecs(NamedTuple):
    model: ModelSpec
    loss: LossSpec
    assigner: Assigner
    optim: OptimSpec
    schedule: ScheduleSpec

    def hparams(self) -> dict[str, dict]:
        """Plain dicts, lists and scalars (checkpoints load with ``weights_only=True``)."""
        return {name: asdict(spec) for name, spec in self._asdict().items()}


def module_specs(model: Any, loss: Any, assigner: Any, optim: Any, schedule: Any) -> ModuleSpecs:
    """Each argument a spec or a mapping (a dict, a checkpoint's hyper-parameters): older checkpoints'
    keys upgraded (:func:`~yolov7_lightning.models.checkpoint_upgrades.upgrade_hparams`: Hydra's
    ``_target_``-style keys and ``model.weights*`` dropped, the assigner's moved keys given to the loss),
    and any other unknown key is an error naming the group and the key. The model's heads and the
    assigner's strategy must agree (:func:`~yolov7_lightning.assign.check_heads`): a ``ValueError``."""
    groups = upgrade_hparams({"model": model, "loss": loss, "assigner": assigner, "optim": optim,
                              "schedule": schedule})
    model = to_spec(ModelSpec, groups["model"], "model")
    arch = get_arch(model.variant)
    aux_head = arch.has_aux_head(model.aux_head)
    assigner = to_spec(Assigner, groups["assigner"], "assigner")
    check_heads(assigner.strategy, aux_head, arch.name)  # the config says what runs, before any work
    loss, optim = to_spec(LossSpec, groups["loss"], "loss"), to_spec(OptimSpec, groups["optim"], "optim")
    return ModuleSpecs(model, loss, assigner, optim, to_spec(ScheduleSpec, groups["schedule"], "schedule"))
