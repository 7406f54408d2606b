"""EMA of the weights with the official ramp, built on Lightning's ``WeightAveraging``.

``decay(u) = 0.9999 * (1 - exp(-u / 2000))`` for update ``u`` (optimizer steps), over every float
tensor of the state (parameters and BN buffers; integer buffers are copied), kept in fp32.
``WeightAveraging`` gives the rest: validation runs on the EMA weights, checkpoints store them as
``state_dict`` (the live weights under ``current_model_state``), a resumed run restores both, and the
model holds the EMA weights when fit ends (so export uses them).

One difference from the official ``ModelEMA``: the first update copies the model (the official
blends in ``decay(1) ~ 5e-4`` of the initial weights); every later update is the official one.
Under DDP every rank keeps the EMA (the official keeps it on rank 0): before each update rank 0's BN
statistics are broadcast, so all ranks average the same weights and validate the same EMA model.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging

from ..ddp import broadcast_buffers


def ema_decay(updates: int | float, decay: float = 0.9999, tau: float = 2000.0) -> float:
    return decay * (1 - math.exp(-updates / tau))


class YOLOv7EMA(WeightAveraging):
    """Official YOLOv7 EMA (``decay`` 0.9999, ramp ``tau`` 2000 updates)."""

    def __init__(self, decay: float = 0.9999, tau: float = 2000.0):
        self.decay, self.tau = decay, tau

        def multi_avg_fn(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
            if not averaged[0].is_floating_point():  # tensors come grouped by dtype: integer buffers are copied
                torch._foreach_copy_(averaged, current)
                return
            d = ema_decay(int(num_averaged) + 1, decay, tau)  # AveragedModel counts from 0 (the first copy)
            torch._foreach_lerp_(averaged, current, 1 - d)

        super().__init__(device=None, use_buffers=True, multi_avg_fn=multi_avg_fn)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.world_size > 1 and trainer.global_step > self._latest_update_step:
            broadcast_buffers(pl_module)  # an update follows: average rank 0's BN statistics on every rank
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
