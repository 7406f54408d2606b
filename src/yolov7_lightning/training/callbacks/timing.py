"""Where a run's time goes: seconds of data loading, forward, loss, backward, optimizer step and
validation, summed over the run (``metrics.json: time``, and one log line at the end).

The parts are the wall time between the hooks that bound them, on rank 0:

- ``data``: from the end of one training batch (or the start of the epoch) to the forward pass of the
  next (the wait for the data loader, the transfer to the device, multi-scale resizing);
- ``forward``: the network's forward pass (hooks on ``pl_module.model``; with ``compile``, whose graph
  the hooks would break, the forward pass and the loss together);
- ``loss``: from the end of the forward pass to the backward pass (assignment and loss; null with
  ``compile``);
- ``backward``: the backward pass;
- ``step``: from the end of the backward pass to the end of the batch (optimizer step, EMA, logging);
- ``validation``: validation passes with their evaluation (sanity check excluded);
- ``other``: the rest of the fit (checkpoints, callbacks at epoch ends, the export).

On CUDA the device runs ahead of the host, so each mark waits for it (``torch.cuda.synchronize``),
which costs some throughput: there the breakdown is opt-in (``time_breakdown=true``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ...errors import ConfigError

log = logging.getLogger(__name__)

PARTS = ("data", "forward", "loss", "backward", "step", "validation", "other")


class TimeBreakdown(Callback):
    """``mode``: ``"auto"`` (on CPU; off on CUDA, where each mark would wait for the device) or ``True``."""

    def __init__(self, mode: bool | str = "auto") -> None:
        if mode not in ("auto", True):
            raise ConfigError(f"time_breakdown: auto, true or false, got {mode!r}")
        self.mode = mode
        self.active = True
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self._mark: float | None = None
        self._fit_start: float | None = None
        self._cuda = False
        self._hooks: list = []
        self._val_start: float | None = None
        self._split = True  # forward and loss timed apart (hooks on the network)

    def _now(self) -> float:
        if self._cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _lap(self, part: str) -> None:
        """The time since the last mark goes to ``part``; a new mark starts."""
        if not self.active:
            return
        now = self._now()
        if self._mark is not None:
            self.seconds[part] += now - self._mark
        self._mark = now

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._cuda = pl_module.device.type == "cuda"
        self.active = not (self._cuda and self.mode == "auto")
        if not self.active:
            return
        self._fit_start = self._now()
        # hooks on a network that torch.compile captures would break its graph: a compiled run times the
        # forward pass and the loss as one part (forward_s; loss_s is null)
        self._split = not getattr(pl_module, "hparams", {}).get("compile")
        if self._split:
            model = getattr(pl_module, "model", pl_module)
            self._hooks = [model.register_forward_pre_hook(self._forward_pre),
                           model.register_forward_hook(self._forward_post)]

    def _forward_pre(self, module: torch.nn.Module, args: Any) -> None:
        if module.training and self._mark is not None:
            self._lap("data")  # since the batch start: the input's preparation (multi-scale, memory format)

    def _forward_post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if module.training and self._mark is not None:
            self._lap("forward")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._mark = self._now() if self.active else None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._lap("data")

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        self._lap("loss" if self._split else "forward")

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lap("backward")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._lap("step")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._mark = None  # to the next epoch's start: checkpoints and epoch-end callbacks are "other"

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = None if trainer.sanity_checking or not self.active else self._now()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_start is not None:
            self.seconds["validation"] += self._now() - self._val_start
            if self._mark is not None:  # validation inside a training epoch (val_check_interval < 1)
                self._mark += self._now() - self._val_start

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if not self.active:
            return
        if self._fit_start is not None:
            total = self._now() - self._fit_start
            self.seconds["other"] = max(0.0, total - sum(v for k, v in self.seconds.items() if k != "other"))
        if trainer.is_global_zero:
            log.info("time: %s", summary_line({k: v for k, v in self.seconds.items() if self._split or k != "loss"}))

    def record(self) -> dict[str, float] | None:
        """``metrics.json: time``: seconds per part and their total (None when off: ``auto`` on CUDA)."""
        if not self.active:
            return None
        out = {f"{k}_s": round(v, 2) for k, v in self.seconds.items()}
        if not self._split:
            out["loss_s"] = None  # in forward_s
        out["total_s"] = round(sum(self.seconds.values()), 2)
        return out


def summary_line(seconds: dict[str, float]) -> str:
    total = sum(seconds.values()) or 1.0
    return "  ".join(f"{k} {v:.1f} s ({100 * v / total:.0f}%)" for k, v in seconds.items())
