"""Validation pictures for every logger: boxes (predicted and ground truth), the objectness maps of
the lead and aux heads side by side (the YOLOv7 paper's Figure 8) and the per-class AP table.

Every ``every_n_epochs`` epochs (and the last one), on global rank 0, the first ``num_images`` images
of the first validation batch go through the (EMA) model once more; nothing else is recomputed.
The pictures then go to each logger in its own form:

- W&B: ``val/images`` (``wandb.Image`` with ``predictions`` and ``ground_truth`` box layers and the
  class labels), ``val/objectness`` (one figure per image), ``val/per_class`` (``wandb.Table``:
  class, AP, AP50);
- TensorBoard: the same pictures with ``add_image`` (ground truth | predictions side by side) and
  the per-class table as text;
- CSV logger, or no logger that takes pictures: PNG files and ``per_class.csv`` under
  ``<run folder>/visuals/epoch_<NNN>/``.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from PIL import Image, ImageDraw, ImageFont

from ...atomic import atomic_open, atomic_write
from ...config import VisualsConfig
from ...errors import ConfigError
from ...boxes import xywh_to_xyxy
from ...eval.detector import TorchDetector
from ...eval.draw import draw_detections
from ...eval.nms import PREDICT
from ..evaluation import EvalResult

log = logging.getLogger(__name__)

__all__ = ["PER_CLASS_COLUMNS", "ValidationVisuals", "boxes_panel", "objectness_figure", "objectness_maps",
           "per_class_rows"]

PER_CLASS_COLUMNS = ["class", "AP", "AP50"]


@dataclass
class Snapshot:
    """What one validation epoch shows: ``n`` images (uint8 HxWx3), their predictions and ground
    truth (``[k, 6]`` x1, y1, x2, y2, score, class in input pixels) and per-level objectness maps
    (``[n, H_l, W_l]``: sigmoid objectness, max over the anchors; ``aux`` None without aux head)."""

    epoch: int
    step: int
    images: list[np.ndarray]
    predictions: list[np.ndarray]
    ground_truth: list[np.ndarray]
    lead: list[np.ndarray]
    aux: list[np.ndarray] | None
    strides: list[int]
    rendered: dict[str, list[np.ndarray]] = field(default_factory=dict)


def objectness_maps(maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """Raw head maps ``[B, A, H, W, 5 + nc]`` per level -> ``[B, H, W]`` sigmoid(objectness), max
    over the anchors."""
    return [p[..., 4].float().sigmoid().amax(dim=1) for p in maps]


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """A title strip above ``image``."""
    w = image.shape[1]
    font = ImageFont.load_default(size=max(10, w // 24))
    strip = Image.new("RGB", (w, font.size + 6), (255, 255, 255))
    ImageDraw.Draw(strip).text((3, 2), text, fill=(0, 0, 0), font=font)
    return np.concatenate([np.asarray(strip), image], 0)


def boxes_panel(image: np.ndarray, ground_truth: np.ndarray, predictions: np.ndarray,
                names: list[str] | None = None) -> np.ndarray:
    """uint8 ``HxWx3``: the ground truth (left) and the predictions with scores (right)."""
    gt = _label(draw_detections(image, ground_truth, names, scores=False), "ground truth")
    pred = _label(draw_detections(image, predictions, names), f"predictions ({len(predictions)})")
    gap = np.full((gt.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([gt, gap, pred], 1)


def objectness_figure(image: np.ndarray, lead: list[np.ndarray], aux: list[np.ndarray] | None,
                      strides: list[int], title: str = "") -> np.ndarray:
    """uint8 ``HxWx3`` figure: the image, then one objectness map per level, a row for the lead head
    and one for the aux head (when there is one); one colour scale (0..1) for all maps."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [("lead", lead)] + ([("aux", aux)] if aux is not None else [])
    cols = 1 + len(lead)
    fig = Figure(figsize=(2.2 * cols + 0.6, 2.3 * len(rows)), dpi=80)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    shown = None
    for r, (head, maps) in enumerate(rows):
        axes[r, 0].imshow(image)
        axes[r, 0].set_title("image" if r == 0 else "", fontsize=9)
        axes[r, 0].set_ylabel(head, fontsize=10)
        for c, (m, s) in enumerate(zip(maps, strides), start=1):
            shown = axes[r, c].imshow(m, cmap="inferno", vmin=0.0, vmax=1.0, interpolation="nearest")
            axes[r, c].set_title(f"{head} P{int(np.log2(s))} (stride {s})", fontsize=9)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    if shown is not None:
        fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8, label="objectness")
    if title:
        fig.suptitle(title, fontsize=10)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class ValidationVisuals(L.Callback):
    """Pictures of the validation every ``every_n_epochs`` epochs and at the last epoch (rank 0).

    Args (defaults: ``yolov7-train``'s ``visuals`` keys, ``config.VisualsConfig``):
        every_n_epochs: how often (in epochs; validation must run that epoch).
        num_images: images taken from the first validation batch (fewer if the batch is smaller).
        conf_thres, iou_thres, max_det: NMS of the drawn predictions (default: the prediction
            preset, :data:`~yolov7_lightning.eval.nms.PREDICT`, not the test protocol's conf 0.001).
    """

    def __init__(self, every_n_epochs: int = VisualsConfig.every_n_epochs, num_images: int = VisualsConfig.num_images,
                 conf_thres: float = PREDICT.conf_thres,
                 iou_thres: float = PREDICT.iou_thres, max_det: int = PREDICT.max_det):
        if every_n_epochs < 1 or num_images < 1:
            raise ConfigError(f"every_n_epochs and num_images must be >= 1, got {every_n_epochs}, {num_images}")
        self.every_n_epochs, self.num_images = int(every_n_epochs), int(num_images)
        self.conf_thres, self.iou_thres, self.max_det = conf_thres, iou_thres, max_det
        self.snapshot: Snapshot | None = None
        self.result: EvalResult | None = None  # the validation pass whose pictures are taken (its per-class AP)
        self.written: list[Path] = []  # PNG/CSV files written so far (for the file output)

    # ---- when -------------------------------------------------------------------------------------
    def due(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return False
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and trainer.max_epochs > 0 and epoch >= trainer.max_epochs
        return epoch % self.every_n_epochs == 0 or last

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.snapshot, self.result = None, None

    def on_eval_result(self, trainer: L.Trainer, pl_module: L.LightningModule, result: EvalResult) -> None:
        if result.split == "val":
            self.result = result

    @torch.no_grad()
    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx != 0 or dataloader_idx != 0 or self.snapshot is not None or not self.due(trainer):
            return
        self.snapshot = self.capture(pl_module, batch, trainer.current_epoch, trainer.global_step)

    def capture(self, pl_module: L.LightningModule, batch: dict, epoch: int = 0, step: int = 0) -> Snapshot:
        """Predictions, ground truth and objectness maps of the first ``num_images`` of ``batch`` (the
        predictions through :class:`~yolov7_lightning.eval.detector.TorchDetector`, as ``yolov7-predict``)."""
        model = pl_module.model
        images = batch["images"][: self.num_images]
        if images.dtype == torch.uint8:
            images = images.float() / 255
        dets, heads = TorchDetector(model).detect_with_heads(images, conf_thres=self.conf_thres,
                                                             iou_thres=self.iou_thres, max_det=self.max_det)
        targets = batch["targets"].detach()
        gts = []
        for i in range(len(images)):
            t = targets[targets[:, 0] == i]
            gts.append(torch.cat([xywh_to_xyxy(t[:, 2:6]), torch.ones_like(t[:, :1]), t[:, 1:2]], 1).cpu().numpy())
        lead = [m.cpu().numpy() for m in objectness_maps(heads.lead)]
        aux = [m.cpu().numpy() for m in objectness_maps(heads.aux)] if heads.aux is not None else None
        pixels = (images.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return Snapshot(epoch=epoch, step=step, images=list(pixels),
                        predictions=[d.cpu().numpy() for d in dets], ground_truth=gts, lead=lead, aux=aux,
                        strides=[int(s) for s in model.arch.strides])

    # ---- where ------------------------------------------------------------------------------------
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        (snap, self.snapshot), (result, self.result) = (self.snapshot, None), (self.result, None)
        if snap is None:
            return
        names = [str(n) for n in (pl_module.hparams.get("names") or [])]
        rows = per_class_rows(result)
        picture_loggers = 0
        for logger in trainer.loggers:
            try:
                if isinstance(logger, WandbLogger):
                    self._to_wandb(logger, snap, names, rows)
                    picture_loggers += 1
                elif isinstance(logger, TensorBoardLogger):
                    self._to_tensorboard(logger, snap, names, rows)
                    picture_loggers += 1
            except Exception:  # a picture must never stop a training run
                log.exception("validation visuals: logging to %s failed", type(logger).__name__)
        if picture_loggers == 0 or any(isinstance(lg, CSVLogger) for lg in trainer.loggers):
            out = Path(trainer.default_root_dir) / "visuals" / f"epoch_{snap.epoch:03d}"
            try:
                self.written += self.to_files(out, snap, names, rows)
            except Exception:
                log.exception("validation visuals: writing %s failed", out)

    @staticmethod
    def boxes(snap: Snapshot, names: list[str]) -> list[np.ndarray]:
        """One ground truth | predictions panel per image (drawn once per snapshot)."""
        if "boxes" not in snap.rendered:
            snap.rendered["boxes"] = [boxes_panel(im, gt, pred, names)
                                      for im, gt, pred in zip(snap.images, snap.ground_truth, snap.predictions)]
        return snap.rendered["boxes"]

    @staticmethod
    def objectness(snap: Snapshot) -> list[np.ndarray]:
        """One lead (vs aux) objectness figure per image (drawn once per snapshot)."""
        if "objectness" not in snap.rendered:
            title = f"epoch {snap.epoch}: objectness, " + ("lead vs aux head" if snap.aux is not None else "lead head")
            snap.rendered["objectness"] = [
                objectness_figure(im, [m[i] for m in snap.lead], None if snap.aux is None else [m[i] for m in snap.aux],
                                  snap.strides, title=title) for i, im in enumerate(snap.images)]
        return snap.rendered["objectness"]

    def to_files(self, out: Path, snap: Snapshot, names: list[str], rows: list[list[Any]]) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        boxes, maps = self.boxes(snap, names), self.objectness(snap)
        written = []
        for i, (b, m) in enumerate(zip(boxes, maps)):
            for kind, arr in (("boxes", b), ("objectness", m)):
                path = out / f"{kind}_{i}.png"
                atomic_write(path, lambda f, arr=arr: Image.fromarray(arr).save(f, format="PNG"))
                written.append(path)
        if rows:
            path = out / "per_class.csv"
            with atomic_open(path, binary=False, newline="") as f:
                csv.writer(f).writerows([PER_CLASS_COLUMNS, *rows])
            written.append(path)
        return written

    def _to_tensorboard(self, logger: TensorBoardLogger, snap: Snapshot, names: list[str],
                        rows: list[list[Any]]) -> None:
        boxes, maps = self.boxes(snap, names), self.objectness(snap)
        writer = logger.experiment
        for i, (b, m) in enumerate(zip(boxes, maps)):
            writer.add_image(f"val/images/{i}", b, snap.step, dataformats="HWC")
            writer.add_image(f"val/objectness/{i}", m, snap.step, dataformats="HWC")
        if rows:
            table = ["| " + " | ".join(PER_CLASS_COLUMNS) + " |", "|" + "---|" * len(PER_CLASS_COLUMNS)]
            table += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
            writer.add_text("val/per_class", "\n".join(table), snap.step)

    def _to_wandb(self, logger: WandbLogger, snap: Snapshot, names: list[str], rows: list[list[Any]]) -> None:
        import wandb

        labels = {i: n for i, n in enumerate(names)} or None
        images = [wandb.Image(im, caption=f"epoch {snap.epoch} image {i}",
                              boxes={"predictions": _wandb_boxes(pred, names, labels, scores=True),
                                     "ground_truth": _wandb_boxes(gt, names, labels, scores=False)})
                  for i, (im, pred, gt) in enumerate(zip(snap.images, snap.predictions, snap.ground_truth))]
        maps = self.objectness(snap)
        record = {"val/images": images,
                  "val/objectness": [wandb.Image(m, caption=f"epoch {snap.epoch} image {i}")
                                     for i, m in enumerate(maps)],
                  "trainer/global_step": snap.step}
        if rows:
            record["val/per_class"] = wandb.Table(columns=PER_CLASS_COLUMNS, data=rows)
        logger.experiment.log(record)


def per_class_rows(result: EvalResult | None) -> list[list[Any]]:
    """``[class, AP@.5:.95, AP@.5]`` per class of an evaluation pass's result (-1: no ground truth)."""
    ap = result.per_class if result is not None else {}
    ap50 = result.per_class_map50 if result is not None else {}
    return [[str(name), round(float(v), 5), round(float(ap50.get(name, -1.0)), 5)] for name, v in ap.items()]


def _wandb_boxes(dets: np.ndarray, names: list[str], labels: dict[int, str] | None, scores: bool) -> dict:
    data = []
    for x1, y1, x2, y2, score, cls in np.asarray(dets).reshape(-1, 6).tolist():
        c = int(cls)
        name = names[c] if 0 <= c < len(names) else str(c)
        box = {"position": {"minX": x1, "minY": y1, "maxX": x2, "maxY": y2}, "domain": "pixel", "class_id": c,
               "box_caption": f"{name} {score:.2f}" if scores else name}
        if scores:
            box["scores"] = {"score": score}
        data.append(box)
    return {"box_data": data, **({"class_labels": labels} if labels else {})}
