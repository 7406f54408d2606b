"""Deploy export at the end of fit: ``deploy.pt``, ``model.onnx`` and ``export_report.json`` written
next to the checkpoints (the ModelCheckpoint folder), from the weights the model holds when fit ends
(the EMA weights when the EMA callback is on). Optionally the deploy checkpoint is refreshed every
time the best checkpoint changes (``best_deploy.pt``).

Runs on global rank 0 only, on a CPU copy of the network (the training model is not touched).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from ...config import ExportConfig
from ...export import ExportOptions, Tolerances, export, load_source, save_deploy, source_from_model
from ...eval.nms import PREDICT
from ...export.check import empty_checks

log = logging.getLogger(__name__)


class DeployExport(Callback):
    """Args (defaults: ``yolov7-train``'s ``export`` keys, ``config.ExportConfig``): ``formats`` (of
    ``deploy``, ``onnx``, ``torchscript``), ``nms`` (end-to-end ONNX graph),
    ``dynamic_batch``, ``opset``, ``on_best`` (also write ``best_deploy.pt`` when the best checkpoint
    changes), ``strict`` (raise when a self-check fails; else log an error), ``dirpath`` (default: the
    ModelCheckpoint folder, else ``<default_root_dir>/checkpoints``), ``image_size`` (default: the
    module's ``image_size``)."""

    def __init__(self, formats: tuple[str, ...] | list[str] | None = None, nms: bool = ExportConfig.nms,
                 dynamic_batch: bool = True, opset: int = 17, on_best: bool = ExportConfig.on_best, strict: bool = True,
                 dirpath: str | None = None, image_size: int | None = None,
                 conf_thres: float = PREDICT.conf_thres, iou_thres: float = PREDICT.iou_thres,
                 max_det: int = PREDICT.max_det, box_px_tol: float = Tolerances.box_px,
                 score_tol: float = Tolerances.score, box_rel_tol: float = Tolerances.box_rel):
        formats = ExportConfig().formats if formats is None else formats  # yolov7-train's export.formats
        self.options = ExportOptions(formats=tuple(formats), nms=nms, dynamic_batch=dynamic_batch, opset=opset,
                                     conf_thres=conf_thres, iou_thres=iou_thres, max_det=max_det,
                                     tolerances=Tolerances(box_px_tol, box_rel_tol, score_tol))
        self.on_best, self.strict, self.dirpath, self.image_size = on_best, strict, dirpath, image_size
        self.last_best: str | None = None
        self.report: dict | None = None

    def out_dir(self, trainer: L.Trainer) -> Path:
        if self.dirpath:
            return Path(self.dirpath)
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and getattr(ckpt, "dirpath", None):
            return Path(ckpt.dirpath)
        return Path(trainer.default_root_dir) / "checkpoints"

    def _source(self, pl_module: L.LightningModule):
        hp = pl_module.hparams
        return source_from_model(pl_module.model, spec=hp.get("model"), names=hp.get("names"),
                                 image_size=self.image_size or hp.get("image_size"))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.on_best or trainer.sanity_checking or not trainer.is_global_zero:
            return
        self._refresh_best(trainer, pl_module)

    def _refresh_best(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """``best_model_path`` is updated by ModelCheckpoint (which runs after the other callbacks), so a
        new best is seen at the next validation end, or at fit end."""
        ckpt = trainer.checkpoint_callback
        best = getattr(ckpt, "best_model_path", None) if ckpt is not None else None
        if best and best != self.last_best:
            self.last_best = best
            path = save_deploy(load_source(best), self.out_dir(trainer) / "best_deploy.pt")  # the best weights
            log.info("best deploy checkpoint: %s", path)

    def trial_seconds(self, pl_module: L.LightningModule) -> float:
        """Seconds one export of the current weights takes, written into a temporary folder and
        discarded (what a time budget reserves for the export at the end of the run)."""
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="export-trial-") as tmp:
            export(self._source(pl_module), Path(tmp), self.options, raise_on_fail=False)
        return time.perf_counter() - start

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        if self.on_best:
            self._refresh_best(trainer, pl_module)
        out = self.out_dir(trainer)
        self.report = export(self._source(pl_module), out, self.options, raise_on_fail=self.strict)
        if not self.report["passed"]:
            log.error("deploy export self-check failed, see %s", out / "export_report.json")
        if empty_checks(self.report):  # nothing to compare on the check images: say on what the NMS was checked
            log.warning("deploy export: %s", self.report["nms_check"])
        log.info("deploy export: %s", ", ".join(f"{k}={v}" for k, v in self.report["outputs"].items()))
