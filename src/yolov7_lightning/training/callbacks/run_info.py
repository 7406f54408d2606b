"""The job's resolved config and the model's size, given to every logger once at the start of fit."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger

__all__ = ["SUMMARY_KEYS", "LogRunInfo"]

SUMMARY_KEYS = ("params_train", "params_deploy", "gflops_train", "gflops_deploy")


class LogRunInfo(L.Callback):
    """On global rank 0, at the start of fit: ``config`` (the resolved job config; the module's own
    hyper-parameters win where they overlap, key by key within a group: ``model.num_classes`` set
    from the dataset wins, ``model.weights``, an option of the training command, stays) plus
    ``model_summary`` (``models.summary.summarize``: params and GFLOPs of the training and deploy
    forms at the variant's nominal size) go to every logger's ``log_hyperparams`` (W&B: the run
    config; CSV: ``hparams.yaml``; TensorBoard: the HPARAMS tab). W&B also gets the four numbers in
    the run summary as ``model/params_train``, ``model/gflops_train``, .... ``summary`` is computed
    once by the caller (the train CLI also writes it to ``metrics.json``)."""

    def __init__(self, config: dict[str, Any], summary: dict[str, Any]):
        self.config, self.summary = dict(config), dict(summary)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not trainer.loggers:
            return
        params = dict(self.config)
        for key, value in dict(pl_module.hparams).items():
            base = params.get(key)
            params[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
        params["model_summary"] = self.summary
        for logger in trainer.loggers:
            logger.log_hyperparams(params)
            if isinstance(logger, WandbLogger):
                logger.experiment.summary.update({f"model/{k}": self.summary[k] for k in SUMMARY_KEYS})
