"""``ModelSpec``: what builds a network (:func:`~yolov7_lightning.models.build_model`), the schema of
the ``model`` config group (``config.ModelConfig`` adds the training command's ``weights`` options)
and what checkpoints and deploy files record. ``ScalingSpec`` is the ``scaling`` group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class ScalingSpec:
    """The ``scaling`` group: ``mode`` in none | width | depth | compound (``models/scaling.py``)."""

    mode: str = "none"
    width: float = 1.0
    depth: float = 1.0


@dataclass
class ModelSpec:
    """A variant and its switches (validated by :class:`~yolov7_lightning.models.yolo.YOLOv7`)."""

    variant: str = "yolov7"
    num_classes: int = 80
    # None: the variant's official default (P6 on, P5 off); the config sets it from the assigner
    aux_head: Optional[bool] = None
    # planned (RepConvN: no identity where the official has none) | identity | off (plain 3x3)
    repconv: str = "planned"
    # E6E only: branches (official two-ELAN + sum) | grouped (expand/shuffle/merge cardinality)
    eelan_form: str = "branches"
    # E6E only: branch (partial aux head reads one E-ELAN branch before the merge, official) | merged
    aux_tap: str = "branch"
    # ELAN 3x3 convs: none (official) | planned (RepConvN) | identity (RepConv where c1 == c2)
    elan_repconv: str = "none"
    scaling: ScalingSpec = field(default_factory=ScalingSpec)
