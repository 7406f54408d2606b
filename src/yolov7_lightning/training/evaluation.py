"""Evaluation passes of the LightningModule: the settings they are given, the result they return.

- :class:`EvalSettings`: backend and NMS protocol (the ``evaluation`` config group) and test-time
  augmentation; given to the module (constructor, or :meth:`YOLOv7Module.set_evaluation`), never
  edited in place.
- :class:`EvalResult`: one validation or test pass: the scalars (the 12 COCO numbers, image and
  detection counts, fitness), the per-class tables, the text summary, the speed, and the evaluator
  holding the pass's detections (COCO results JSON, ``save_txt``). The module hands each finished
  pass's result to the trainer's callbacks that take it (:func:`hand_out`: their
  ``on_eval_result(trainer, pl_module, result)``); :func:`evaluate` runs a pass and returns it.
- :class:`EvalPass`: what one pass accumulates (the evaluator, the clocks).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import lightning as L
import torch

from ..data.collate import ImageMeta
from ..eval import DetectionEvaluator, make_evaluator
from ..eval.nms import TEST, NMSSettings
from ..errors import ConfigError
from ..models.checkpoint_upgrades import upgrade_evaluation

if TYPE_CHECKING:
    from .module import YOLOv7Module

__all__ = ["EvalPass", "EvalResult", "EvalSettings", "EvalSpeed", "evaluate", "fitness", "hand_out"]


def fitness(metrics: Mapping[str, float]) -> float:
    """Official best-checkpoint criterion: 0.1 * mAP@.5 + 0.9 * mAP@.5:.95."""
    return 0.1 * metrics["map50"] + 0.9 * metrics["map"]


@dataclass(frozen=True)
class EvalSettings:
    """How a validation / test pass evaluates: ``backend`` (pycocotools | torchmetrics), the NMS of the
    official test protocol (``conf_thres``, ``iou_thres``, ``max_det``, ``multi_label``) and ``augment``
    (official ``--augment``: test-time augmentation, ``yolov7-eval tta=true``)."""

    backend: str = "pycocotools"
    conf_thres: float = TEST.conf_thres
    iou_thres: float = TEST.iou_thres
    max_det: int = TEST.max_det
    multi_label: bool = TEST.multi_label
    augment: bool = False

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None = None, **overrides: Any) -> EvalSettings:
        """From an ``evaluation`` config dict, ``overrides`` last. The keys of older checkpoints are
        upgraded (:func:`~yolov7_lightning.models.checkpoint_upgrades.upgrade_evaluation`); any other
        key that is not a field is an error naming it."""
        cfg = upgrade_evaluation(cfg)
        return cls().updated(cfg, **overrides)

    def updated(self, cfg: Mapping[str, Any] | None = None, **overrides: Any) -> EvalSettings:
        """A copy with the fields that ``cfg`` and ``overrides`` give (``overrides`` last)."""
        names = [f.name for f in dataclasses.fields(self)]
        given = {**dict(cfg or {}), **overrides}
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join('evaluation.' + k for k in unknown)}; "
                              f"valid keys of evaluation: {', '.join(names)}")
        return dataclasses.replace(self, **given)

    def nms_kwargs(self) -> dict[str, Any]:
        return NMSSettings.of(self).kwargs()


@dataclass(frozen=True)
class EvalSpeed:
    """Seconds spent over a pass (official ``test.py`` speed figures): ``inference`` (forward pass
    and decoding; the three views with TTA; the validation loss not counted), ``nms``, over ``images``."""

    inference: float = 0.0
    nms: float = 0.0
    images: int = 0

    def per_image_ms(self) -> dict[str, float]:
        """``inference_ms``, ``nms_ms``, ``total_ms`` per image."""
        n = max(self.images, 1)
        ms = {"inference_ms": 1000 * self.inference / n, "nms_ms": 1000 * self.nms / n}
        return ms | {"total_ms": ms["inference_ms"] + ms["nms_ms"]}


@dataclass(frozen=True)
class EvalResult:
    """One evaluation pass (``split``: val | test).

    ``scalars``: every number of the evaluator's ``compute()`` in its order (the 12 COCO numbers as
    floats, ``num_images`` and ``num_detections`` as ints) then ``fitness``; ``per_class`` /
    ``per_class_map50``: ``{class name: AP@.5:.95 / AP@.5}`` (-1: no ground truth); ``summary``: the
    pycocotools table; ``speed``; ``detections``: the evaluator with the pass's detections
    (``save_json``, :func:`~yolov7_lightning.eval.save_txt.write_yolo_txt`)."""

    split: str
    scalars: dict[str, float | int]
    per_class: dict[str, float] = field(default_factory=dict)
    per_class_map50: dict[str, float] = field(default_factory=dict)
    summary: str = ""
    speed: EvalSpeed = field(default_factory=EvalSpeed)
    detections: DetectionEvaluator | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_metrics(cls, split: str, metrics: Mapping[str, Any], speed: EvalSpeed | None = None,
                     detections: DetectionEvaluator | None = None) -> EvalResult:
        """From an evaluator's ``compute()`` (fitness added)."""
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        scalars["fitness"] = fitness({k: float(v) for k, v in scalars.items()})
        return cls(split, scalars, dict(metrics.get("per_class") or {}), dict(metrics.get("per_class_map50") or {}),
                   str(metrics.get("summary", "")), speed or EvalSpeed(), detections)

    @property
    def map(self) -> float:
        return float(self.scalars["map"])

    @property
    def map50(self) -> float:
        return float(self.scalars["map50"])

    @property
    def fitness(self) -> float:
        return float(self.scalars["fitness"])

    def floats(self) -> dict[str, float]:
        """The float scalars: the 12 COCO numbers and fitness (what ``metrics.json`` keeps of a test pass)."""
        return {k: v for k, v in self.scalars.items() if isinstance(v, float)}

    def class_maps(self) -> list[float]:
        """Per-class mAP@.5:.95 for image weights; a class without ground truth takes the overall mAP."""
        overall = max(float(self.scalars.get("map", 0.0)), 0.0)
        return [v if v >= 0 else overall for v in self.per_class.values()]


class EvalPass:
    """One pass in progress: the evaluator of ``split``'s ground truth and the speed clocks."""

    def __init__(self, split: str, evaluator: DetectionEvaluator, device: torch.device):
        self.split, self.evaluator, self.device = split, evaluator, device
        self.inference = self.nms = 0.0
        self.images = 0

    @classmethod
    def start(cls, split: str, settings: EvalSettings, index, device: torch.device) -> EvalPass:
        return cls(split, make_evaluator(settings.backend, index=index), device)

    def clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def add(self, detections: list[torch.Tensor], meta: list[ImageMeta], inference: float, nms: float) -> None:
        self.inference += inference
        self.nms += nms
        self.images += len(detections)
        self.evaluator.update(detections, meta)

    def finish(self) -> EvalResult:
        """Gather (DDP: a collective, every rank) and compute."""
        self.evaluator.gather()
        return EvalResult.from_metrics(self.split, self.evaluator.compute(),
                                       EvalSpeed(self.inference, self.nms, self.images), self.evaluator)


def hand_out(trainer: L.Trainer, pl_module: L.LightningModule, result: EvalResult) -> None:
    """Give a finished pass's ``result`` to every callback of ``trainer`` that takes one: its
    ``on_eval_result(trainer, pl_module, result)`` (the epoch records, the validation pictures)."""
    for callback in trainer.callbacks:
        hook = getattr(callback, "on_eval_result", None)
        if callable(hook):
            hook(trainer, pl_module, result)


class _KeepResult(L.Callback):
    """The result of the pass :func:`evaluate` runs."""

    def __init__(self) -> None:
        self.result: EvalResult | None = None

    def on_eval_result(self, trainer: L.Trainer, pl_module: L.LightningModule, result: EvalResult) -> None:
        self.result = result


def evaluate(trainer: L.Trainer, module: YOLOv7Module, datamodule: L.LightningDataModule, split: str = "val",
             verbose: bool = False) -> EvalResult | None:
    """One validation (``split="val"``) or test pass of ``module`` (with the settings it was given)
    on ``datamodule``; returns its :class:`EvalResult` (None when the pass had no batch)."""
    keep = _KeepResult()
    trainer.callbacks.append(keep)
    try:
        (trainer.validate if split == "val" else trainer.test)(module, datamodule=datamodule, verbose=verbose)
    finally:
        trainer.callbacks = [c for c in trainer.callbacks if c is not keep]
    return keep.result
