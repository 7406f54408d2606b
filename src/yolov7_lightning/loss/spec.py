"""``LossSpec``: the ``loss`` config group (its schema) and the settings ``YOLOv7Loss`` is built with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

COARSE_BOUNDS = ("decoder", "distance", "none")


@dataclass
class LossSpec:
    """Gains of hyp.scratch.* (scaled by levels, classes and image size in the loss), the level
    balance (None: the official one for the number of levels), label smoothing, and the aux head:
    ``aux_weight`` (total = lead + aux_weight x aux) and ``coarse_bound``, how the coarse (aux)
    labels are kept below the fine ones (``decoder``: official, implicitly through the shared xy
    decoder range; ``distance``: objectness target of coarse-only positives capped by the distance
    from the box centre; ``none``: a wider aux decoder that can reach every coarse cell)."""

    box: float = 0.05
    obj: float = 0.7
    cls: float = 0.3
    balance: Optional[List[float]] = None
    label_smoothing: float = 0.0
    aux_weight: float = 0.25
    coarse_bound: str = "decoder"
