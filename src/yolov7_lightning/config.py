"""Typed schemas for the config groups, registered in Hydra's ConfigStore (typos fail at start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

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


def register_configs() -> None:
    from .data.config import register_data_configs

    register_data_configs()
    cs = ConfigStore.instance()
    cs.store(group="schema", name="model", node=ModelConfig)
    cs.store(group="schema", name="scaling", node=ScalingConfig)
