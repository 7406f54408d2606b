"""Each training epoch's data, set at the epoch start on the data side (not by the LightningModule).

:class:`TrainEpochData` (a callback; ``YOLOv7Module.configure_callbacks`` adds it to any Trainer) gives the training batch sampler,
before the epoch's batches are drawn, on every rank and in the same order:

1. the epoch number, ``trainer.current_epoch``: the order and every augmentation draw of the epoch
   come from ``(seed, epoch)``. Lightning itself hands the sampler the epochs *it* has run, so a
   resumed run's first epoch would get 0; this callback runs after it and sets the true epoch,
   which keeps a resumed run exact;
2. close-mosaic: the first epoch without mosaic (``augment.close_mosaic``: the last N epochs of
   ``trainer.max_epochs``, both fitted to the run by a time budget; :meth:`YoloDataModule.mosaic_off_epoch`);
3. image weights (``data.image_weights``, official ``--image-weights``): the per-image sampling
   weights from the training labels and the LightningModule's ``class_maps`` (the per-class mAPs of
   its last validation, kept in checkpoints; :meth:`YoloDataModule.image_weights_for`).

Everything is a function of the epoch, the run length, the data and the checkpointed ``class_maps``
(identical on every rank after the evaluator's gather), so DDP ranks draw the same epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L

__all__ = ["TrainEpochData", "set_train_epoch"]


def set_train_epoch(batch_sampler, datamodule, epoch: int, max_epochs: int | None,
                    class_maps: Sequence[float] | None, close_mosaic: int | None = None) -> None:
    """Set ``batch_sampler`` (a :class:`~.samplers.TrainBatchSampler`; others only get what they
    take) for ``epoch`` of a run of ``max_epochs``, from ``datamodule`` (a :class:`YoloDataModule`);
    ``close_mosaic``: the closing epochs when a time budget fitted them (else ``augment.close_mosaic``)."""
    if callable(getattr(batch_sampler, "set_epoch", None)):
        batch_sampler.set_epoch(epoch)
    if callable(getattr(batch_sampler, "set_mosaic_off_epoch", None)) and hasattr(datamodule, "mosaic_off_epoch"):
        batch_sampler.set_mosaic_off_epoch(datamodule.mosaic_off_epoch(max_epochs, close_mosaic))
    if getattr(batch_sampler, "image_weights", False):
        batch_sampler.set_image_weights(datamodule.image_weights_for(class_maps))


class TrainEpochData(L.Callback):
    """At every training epoch start: :func:`set_train_epoch` on the training loader's batch sampler,
    from the trainer's epoch and run length, its DataModule, and the LightningModule's ``class_maps``
    and ``close_mosaic`` (set by a time budget, :class:`~yolov7_lightning.training.budget.TimeBudget`)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        set_train_epoch(getattr(trainer.train_dataloader, "batch_sampler", None), trainer.datamodule,
                        trainer.current_epoch, trainer.max_epochs, getattr(pl_module, "class_maps", None),
                        getattr(pl_module, "close_mosaic", None))
