"""Typed schemas for the config groups, registered in Hydra's ConfigStore (typos fail at start-up)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class ModelConfig:
    """The ``model`` group: a variant and its switches (see ``models.build_model``)."""

    _target_: str = "yolov7_lightning.models.build_model"
    variant: str = "yolov7"
    num_classes: int = 80
    aux_head: Optional[bool] = None
    repconv: str = "planned"
    eelan_form: str = "branches"
    aux_tap: str = "branch"
    elan_repconv: str = "none"
    weights: Optional[str] = None
    weights_partial: bool = False  # true: a weights file covering under half the model is loaded anyway
    scaling: Any = None


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
    strategy: str = "lead_guided"
    lead: CandidateRule = field(default_factory=CandidateRule)
    aux: CandidateRule = field(default_factory=CandidateRule)
    lead_only: CandidateRule = field(default_factory=lambda: CandidateRule(topk=10))
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

    # open schemas (Dict subclasses, above) are deprecated upstream but supported by OmegaConf 2.x
    warnings.filterwarnings("ignore", message=r"Class `\w+` subclasses `Dict`", category=UserWarning)

    register_data_configs()
    cs = ConfigStore.instance()
    cs.store(group="schema", name="model", node=ModelConfig)
    cs.store(group="schema", name="scaling", node=ScalingConfig)
    for name, node in (("schedule", ScheduleConfig), ("optim", OptimConfig), ("loss", LossConfig),
                       ("assigner", AssignerConfig), ("trainer", TrainerConfig)):
        cs.store(group="schema", name=name, node=node)
