"""Typed schemas for the config groups, registered in Hydra's ConfigStore (typos fail at start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


def aux_head_for(strategy: Optional[str]) -> Optional[bool]:
    """``model.aux_head`` follows the assigner: ``lead_only`` has no aux head, every other strategy
    has one; without an assigner (``None``) the variant's official default."""
    return None if strategy is None else strategy != "lead_only"


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
    scaling: Any = "${scaling}"


@dataclass
class ScalingConfig:
    """The ``scaling`` group: ``mode`` in none | width | depth | compound."""

    mode: str = "none"
    width: float = 1.0
    depth: float = 1.0


def register_configs() -> None:
    from .data.config import register_data_configs
    from .training.precision import register_resolvers

    register_data_configs()
    if not OmegaConf.has_resolver("aux_head_for"):
        OmegaConf.register_new_resolver("aux_head_for", aux_head_for)
    register_resolvers()  # ${cpu_precision:} (conf/trainer/cpu.yaml)
    cs = ConfigStore.instance()
    cs.store(group="schema", name="model", node=ModelConfig)
    cs.store(group="schema", name="scaling", node=ScalingConfig)
