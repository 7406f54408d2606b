"""The official optimiser recipe: three parameter groups, nominal-batch accumulation with weight-decay
scaling, per-iteration warm-up, and the per-epoch one-cycle (cosine) or linear schedule.

:class:`OptimSpec` and :class:`ScheduleSpec` are the ``optim`` and ``schedule`` config groups (their
schemas) and what ``YOLOv7Module`` reads; the functions below take their defaults from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..nn.implicit import ImplicitA, ImplicitM
from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "linear")


@dataclass
class OptimSpec:
    """The ``optim`` group: :func:`build_optimizer` arguments (``name`` in sgd | adam | adamw) and the
    step rules of ``YOLOv7Module``."""

    name: str = "sgd"
    lr0: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 0.0005
    nesterov: bool = True
    nominal_batch: int = 64  # gradients accumulate over max(round(nominal_batch / global batch), 1) batches
    grad_clip: float = 0.0  # 0: off (official); > 0: clip the gradient norm
    multi_scale: bool = False  # official --multi-scale: random size in [0.5, 1.5] x image size per batch
    max_nonfinite: int = 10  # non-finite losses among the last 2 x max_nonfinite steps that stop the run

    def __post_init__(self):
        if self.max_nonfinite < 1:
            raise ConfigError(f"optim.max_nonfinite={self.max_nonfinite}: must be >= 1")


@dataclass
class ScheduleSpec:
    """The ``schedule`` group: epochs and the LR schedule (:class:`LRLambda`) with its warm-up (:class:`WarmUp`),
    and an optional time budget (``minutes``) the epochs are fitted to."""

    kind: str = "cosine"  # cosine (one-cycle) | linear
    lrf: float = 0.1
    epochs: int = 300
    warmup_epochs: float = 3.0
    warmup_min_iters: int = 1000
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    # a time budget for the run (training, validation, checkpoints, export), minutes; null: none.
    # The epochs are fitted to it as the run goes, ``epochs`` the most it may have (training/budget.py)
    minutes: Optional[float] = None

    def __post_init__(self):
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"schedule.minutes={self.minutes}: a time budget must be positive (null: none)")


def parameter_groups(model: nn.Module) -> tuple[list, list, list]:
    """(no decay: BN weights and implicit tensors, decay: other weights, no decay: biases).
    Frozen parameters (``requires_grad=False``, see ``freeze``) are left out."""
    bn_implicit, weights, biases = [], [], []
    for module in model.modules():
        if isinstance(module, (ImplicitA, ImplicitM)):
            bn_implicit.append(module.implicit)
            continue
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter):
            biases.append(bias)
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter):
            (bn_implicit if isinstance(module, nn.modules.batchnorm._BatchNorm) else weights).append(weight)
    return tuple([p for p in group if p.requires_grad] for group in (bn_implicit, weights, biases))


def accumulation(batch_size: int, world_size: int, nominal_batch: int) -> int:
    """Optimizer steps every ``max(round(nbs / global batch), 1)`` batches (official ``accumulate``)."""
    return max(round(nominal_batch / (batch_size * world_size)), 1)


def build_optimizer(model: nn.Module, name: str = OptimSpec.name, lr0: float = OptimSpec.lr0,
                    momentum: float = OptimSpec.momentum, weight_decay: float = OptimSpec.weight_decay,
                    nesterov: bool = OptimSpec.nesterov, batch_size: int = 16, world_size: int = 1,
                    nominal_batch: int = OptimSpec.nominal_batch, fused: bool = True) -> torch.optim.Optimizer:
    """SGD (nesterov) or Adam/AdamW over the three groups; weight decay scaled by the nominal batch:
    ``wd * global_batch * accumulate / nbs``. Group 2 (biases) is the one warm-up treats specially.
    ``fused``: Adam/AdamW take torch's fused kernel where every tensor allows it (the same update in one
    kernel, much faster than the per-tensor loop on a CPU); False for gradient clipping, which needs the
    unscaled gradients a fused step under the grad scaler never exposes."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    acc = accumulation(batch_size, world_size, nominal_batch)
    wd = weight_decay * batch_size * world_size * acc / nominal_batch
    no_decay, decay, biases = parameter_groups(model)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": wd},
              {"params": biases, "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr0, momentum=momentum, nesterov=nesterov)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    fused = fused and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])
    return cls(groups, lr=lr0, betas=(momentum, 0.999), fused=fused or None)


@dataclass
class LRLambda:
    """Per-epoch LR factor: ``cosine`` one-cycle from 1 to ``lrf`` or ``linear``; picklable as plain data."""

    kind: str = ScheduleSpec.kind
    lrf: float = ScheduleSpec.lrf
    epochs: int = ScheduleSpec.epochs

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.kind!r}; valid: {', '.join(SCHEDULES)}")

    def __call__(self, epoch: int) -> float:
        if self.kind == "linear":
            return (1 - epoch / max(self.epochs - 1, 1)) * (1.0 - self.lrf) + self.lrf
        return ((1 - math.cos(epoch * math.pi / self.epochs)) / 2) * (self.lrf - 1) + 1


@dataclass
class WarmUp:
    """Per-iteration warm-up over ``max(round(epochs * batches_per_epoch), min_iters)`` iterations:
    bias lr ``bias_lr -> lr``, other lrs ``0 -> lr``, momentum ``momentum -> final momentum``, and
    the accumulation ``1 -> nominal``."""

    epochs: float = ScheduleSpec.warmup_epochs
    min_iters: int = ScheduleSpec.warmup_min_iters
    momentum: float = ScheduleSpec.warmup_momentum
    bias_lr: float = ScheduleSpec.warmup_bias_lr

    def iterations(self, batches_per_epoch: int) -> int:
        return max(round(self.epochs * batches_per_epoch), self.min_iters)

    def apply(self, optimizer: torch.optim.Optimizer, it: int, total: int, lr_factor: float,
              final_momentum: float) -> None:
        """Set every group's lr (and momentum) for iteration ``it`` of ``total`` warm-up iterations."""
        x = min(it / max(total, 1), 1.0)
        for j, group in enumerate(optimizer.param_groups):
            start = self.bias_lr if j == 2 else 0.0
            group["lr"] = start + (group["initial_lr"] * lr_factor - start) * x
            m = self.momentum + (final_momentum - self.momentum) * x
            if "momentum" in group:
                group["momentum"] = m
            elif "betas" in group:
                group["betas"] = (m, group["betas"][1])

    @staticmethod
    def accumulate(it: int, total: int, nominal: int) -> int:
        """The official ramp of the accumulation during warm-up."""
        x = min(it / max(total, 1), 1.0)
        return max(1, round(1 + (nominal - 1) * x))
