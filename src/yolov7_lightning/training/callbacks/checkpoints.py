"""The checkpoints of a training run: ``best.ckpt`` (by ``val/fitness``), ``last.ckpt`` (after every
epoch) and, with ``save_period``, ``epoch_NNN.ckpt`` every N epochs (:class:`PeriodicCheckpoint`)."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint

from ...errors import ConfigError

__all__ = ["PeriodicCheckpoint", "best_and_last"]


class PeriodicCheckpoint(ModelCheckpoint):
    """``save_period``: a checkpoint every N epochs, kept (its own state key next to ``last``)."""

    def __init__(self, dirpath: str, every_n_epochs: int, filename: str = "epoch_{epoch:03d}") -> None:
        if int(every_n_epochs) < 1:
            raise ConfigError(f"save_period={every_n_epochs}: must be >= 1 (0: no periodic checkpoints)")
        super().__init__(dirpath=dirpath, filename=filename, monitor=None, save_top_k=-1,
                         every_n_epochs=int(every_n_epochs), auto_insert_metric_name=False,
                         enable_version_counter=False)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(kind="save_period", every_n_epochs=self._every_n_epochs)


def best_and_last(ckpt_dir: str | Path) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """Best by fitness, and last after every epoch (Lightning's ``save_last`` follows the top-k saves only)."""
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/fitness", mode="max", save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    return best, last
