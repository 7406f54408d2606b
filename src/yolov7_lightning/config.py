"""Typed schemas for the config groups, registered in Hydra's ConfigStore (typos fail at start-up)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


def aux_head_for(strategy: Optional[str]) -> Optional[bool]:
    """``model.aux_head`` follows the assigner: ``lead_only`` and ``plain`` (official ``loss_ota: 0``)
    have no aux head, the OTA aux strategies have one; without an assigner (``None``) the variant's
    official default."""
    return None if strategy is None else strategy not in ("lead_only", "plain")


@dataclass
class ModelConfig:
    """The ``model`` group: a variant and its switches (see ``models.build_model``). Each
    ``conf/model/<variant>.yaml`` sets ``variant`` and its default assigner; the rest is here."""

    _target_: str = "yolov7_lightning.models.build_model"
    variant: str = "yolov7"
    num_classes: int = 80
    # follows the assigner (conf/assigner/): lead_only -> false, the aux strategies -> true
    aux_head: Optional[bool] = "${aux_head_for:${oc.select:assigner.strategy,null}}"  # type: ignore[assignment]
    # planned (RepConvN: no identity where the official has none) | identity | off (plain 3x3)
    repconv: str = "planned"
    # E6E only: branches (official two-ELAN + sum) | grouped (expand/shuffle/merge cardinality)
    eelan_form: str = "branches"
    # E6E only: branch (partial aux head reads one E-ELAN branch before the merge, official) | merged
    aux_tap: str = "branch"
    # ELAN 3x3 convs: none (official) | planned (RepConvN) | identity (RepConv where c1 == c2)
    elan_repconv: str = "none"
    # fine-tune from a checkpoint of this project or an official .pt
    weights: Optional[str] = None
    weights_partial: bool = False  # true: a weights file covering under half the model is loaded anyway
    scaling: Any = "${scaling}"


@dataclass
class ScalingConfig:
    """The ``scaling`` group: ``mode`` in none | width | depth | compound."""

    mode: str = "none"
    width: float = 1.0
    depth: float = 1.0


# Typed schemas of the groups below: each is a dataclass subclassing Dict[str, Any], so its declared keys
# are typed (``schedule.epochs=abc`` fails at composition, naming the key) while a group's yaml may add
# keys the schema does not list yet (an override of an unknown key still fails: Hydra's struct mode).


@dataclass
class ScheduleConfig(Dict[str, Any]):
    """The ``schedule`` group: epochs and the LR schedule with its warm-up (``training/optim.py``)."""

    kind: str = "cosine"
    lrf: float = 0.1
    epochs: int = 300
    warmup_epochs: float = 3.0
    warmup_min_iters: int = 1000
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1


@dataclass
class OptimConfig(Dict[str, Any]):
    """The ``optim`` group: ``build_optimizer`` arguments and the step rules of ``YOLOv7Module``."""

    name: str = "sgd"
    lr0: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 0.0005
    nesterov: bool = True
    nominal_batch: int = 64
    grad_clip: float = 0.0
    multi_scale: bool = False
    max_nonfinite: int = 10


@dataclass
class LossConfig(Dict[str, Any]):
    """The ``loss`` group: a partial ``YOLOv7Loss`` (gains of hyp.scratch.*)."""

    _target_: str = "yolov7_lightning.loss.YOLOv7Loss"
    _partial_: bool = True
    box: float = 0.05
    obj: float = 0.7
    cls: float = 0.3
    balance: Optional[List[float]] = None
    label_smoothing: float = 0.0


@dataclass
class CandidateRule(Dict[str, Any]):
    offset: float = 0.5
    topk: int = 20


@dataclass
class AssignerConfig(Dict[str, Any]):
    """The ``assigner`` group: ``assign.Assigner`` (strategy, candidate rules, cost weights)."""

    _target_: str = "yolov7_lightning.assign.Assigner"
    strategy: str = "coarse_to_fine"  # lead_only | independent | lead_guided | coarse_to_fine
    lead: CandidateRule = field(default_factory=CandidateRule)
    aux: CandidateRule = field(default_factory=CandidateRule)
    iou_weight: float = 3.0
    cls_weight: float = 1.0
    anchor_t: float = 4.0
    cross_gt: bool = True
    coarse_bound: str = "decoder"
    aux_weight: float = 0.25


@dataclass
class TrainerConfig(Dict[str, Any]):
    """The ``trainer`` group: ``lightning.Trainer`` keys the project sets, typed; other Trainer
    arguments may be added (``+trainer.limit_train_batches=2``)."""

    _target_: str = "lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    precision: Any = "32-true"
    max_epochs: int = 300
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    check_val_every_n_epoch: int = 1
    enable_model_summary: bool = False


def register_configs() -> None:
    from .data.config import register_data_configs
    from .training.precision import register_resolvers

    # open schemas (Dict subclasses, above) are deprecated upstream but supported by OmegaConf 2.x
    warnings.filterwarnings("ignore", message=r"Class `\w+` subclasses `Dict`", category=UserWarning)

    register_data_configs()
    if not OmegaConf.has_resolver("aux_head_for"):
        OmegaConf.register_new_resolver("aux_head_for", aux_head_for)
    register_resolvers()  # ${cpu_precision:} (conf/trainer/cpu.yaml)
    cs = ConfigStore.instance()
    cs.store(group="schema", name="model", node=ModelConfig)
    cs.store(group="schema", name="scaling", node=ScalingConfig)
    for name, node in (("schedule", ScheduleConfig), ("optim", OptimConfig), ("loss", LossConfig),
                       ("assigner", AssignerConfig), ("trainer", TrainerConfig)):
        cs.store(group="schema", name=name, node=node)
