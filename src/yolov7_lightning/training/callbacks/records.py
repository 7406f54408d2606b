"""The records of the epochs a run keeps: the best (the one the best-checkpoint callback holds) and the
last validated, each with every number of its validation (:func:`~..run_summary.epoch_record`).

Given each validation's result (``on_eval_result``: the module hands it out at the end of the pass,
before the ModelCheckpoint callbacks save) it records the epoch as ``last``; when the best
checkpoint's score changes (its callback updates it just before it writes ``best.ckpt``, which
saves this callback's state too) that epoch becomes ``best``. The records
are saved in every checkpoint, so a resumed run keeps its best.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from ..evaluation import EvalResult
from ..run_summary import epoch_record

log = logging.getLogger(__name__)


class EpochRecords(Callback):
    """``best_checkpoint``: the ModelCheckpoint that keeps the best epoch; ``last_path``: the file
    that holds the last epoch."""

    def __init__(self, best_checkpoint: ModelCheckpoint, last_path: str):
        self.best_checkpoint, self.last_path = best_checkpoint, str(last_path)
        self.best: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self._best_score: float | None = None  # the best checkpoint's score the ``best`` record is for

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        score = self.best_checkpoint.best_model_score
        if self._best_score is None and score is not None:  # resumed from a checkpoint without the records
            self._best_score = float(score)  # its best epoch's numbers are unknown: ``best`` stays empty until beaten
            log.info("the checkpoint resumed has no record of its best epoch: metrics.json's best starts with the next "
                     "best epoch")

    def on_eval_result(self, trainer: L.Trainer, pl_module: L.LightningModule, result: EvalResult) -> None:
        if trainer.sanity_checking or result.split != "val":
            return
        self.last = epoch_record(trainer.current_epoch, result.scalars, self.last_path, result.per_class)

    def _sync(self) -> None:
        """``best`` follows the best checkpoint: a changed score means the last validation is the new best."""
        score = self.best_checkpoint.best_model_score
        if score is None or self.last is None:
            return
        score = float(score)
        if self._best_score is None or score != self._best_score:
            self._best_score = score
            self.best = {**self.last, "checkpoint": self.best_checkpoint.best_model_path or None}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync()

    def records(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(best, last) as they stand now."""
        self._sync()
        return self.best, self.last

    def state_dict(self) -> dict[str, Any]:
        self._sync()  # saved while the best checkpoint is written: the record it holds
        return {"best": self.best, "last": self.last, "best_score": self._best_score}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.last, self._best_score = state.get("best"), state.get("last"), state.get("best_score")
