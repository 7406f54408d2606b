"""The specs ``YOLOv7Module`` is built from, out of what its caller gives: the specs themselves, the
config dicts Hydra composes, or the hyper-parameters of a checkpoint (older ones upgraded)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, NamedTuple

from ..assign import Assigner, check_heads, upgrade_legacy_config
from ..loss import LossSpec
from ..models import ModelSpec, get_arch
from ..specs import to_spec
from .optim import OptimSpec, ScheduleSpec

# assigner keys of checkpoints written when they were the assigner's (only the loss reads them)
MOVED_TO_LOSS = ("aux_weight", "coarse_bound")
# model keys of checkpoints written when the module kept the whole ``model`` group: the training
# command's fine-tuning options, applied by then; nothing the network is built from
TRAINING_OPTIONS = ("weights", "weights_partial")


class ModuleSpecs(NamedTuple):
    model: ModelSpec
    loss: LossSpec
    assigner: Assigner
    optim: OptimSpec
    schedule: ScheduleSpec

    def hparams(self) -> dict[str, dict]:
        """Plain dicts, lists and scalars (checkpoints load with ``weights_only=True``)."""
        return {name: asdict(spec) for name, spec in self._asdict().items()}


def upgrade_legacy_assigner(assigner: Mapping, aux_head: bool) -> tuple[dict, dict]:
    """(assigner, loss keys) of an assigner config of an older checkpoint: its ``lead_only`` rule
    (:func:`~yolov7_lightning.assign.upgrade_legacy_config`), and ``aux_weight``/``coarse_bound``
    taken out, for the loss."""
    assigner = upgrade_legacy_config(dict(assigner), aux_head)
    return assigner, {k: assigner.pop(k) for k in MOVED_TO_LOSS if k in assigner}


def module_specs(model: Any, loss: Any, assigner: Any, optim: Any, schedule: Any) -> ModuleSpecs:
    """Each argument a spec or a mapping (a dict, a checkpoint's hyper-parameters): Hydra's
    ``_target_``-style keys are ignored, older checkpoints' keys upgraded (``upgrade_legacy_assigner``,
    ``model.weights*`` dropped; where a moved key is set in the loss too, the loss's value wins), and
    any other unknown key is an error naming the group and the key. The model's heads and the
    assigner's strategy must agree (:func:`~yolov7_lightning.assign.check_heads`): a ``ValueError``."""
    if isinstance(model, Mapping):
        model = {k: v for k, v in model.items() if k not in TRAINING_OPTIONS}
    model = to_spec(ModelSpec, model, "model")
    arch = get_arch(model.variant)
    aux_head = arch.has_aux_head(model.aux_head)
    if not isinstance(assigner, Assigner):
        assigner, moved = upgrade_legacy_assigner(assigner, aux_head)
        if moved:
            loss = {**moved, **(asdict(loss) if isinstance(loss, LossSpec) else dict(loss))}
    assigner = to_spec(Assigner, assigner, "assigner")
    check_heads(assigner.strategy, aux_head, arch.name)  # the config says what runs, before any work
    return ModuleSpecs(model, to_spec(LossSpec, loss, "loss"), assigner,
                       to_spec(OptimSpec, optim, "optim"), to_spec(ScheduleSpec, schedule, "schedule"))
