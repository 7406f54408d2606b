"""The one prediction path: letterboxed images in, detections out, for every user of a trained model.

    detector = TorchDetector.from_checkpoint("best.ckpt")   # training checkpoint, deploy file, official .pt
    detector = TorchDetector(model)                          # a live network (the validation pictures)
    detector = OnnxDetector("model.onnx")                    # the exported graph (eval/onnx_predict.py)
    dets = detector.detect(x)   # x: [B, 3, H, W] float in [0, 1]; thresholds: nms.PREDICT unless given

``detect`` is :meth:`Detector.raw` (the decoded predictions ``[B, N, 5 + nc]``) followed by
:func:`.nms.non_max_suppression`; ``yolov7-predict`` (images, videos, streams), the validation
pictures and the ONNX-vs-PyTorch comparisons all go through it. Evaluation (validation, test,
``yolov7-eval``) is the module's own pass: same network and NMS, with the evaluation protocol's
thresholds, the validation loss and test-time augmentation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from ..models.heads import HeadOutputs
from ..models.yolo import YOLOv7
from ..numerics import no_autocast, to_memory_format
from .nms import PREDICT, non_max_suppression

__all__ = ["Detector", "TorchDetector"]


class Detector:
    """Images float32 ``[B, 3, H, W]`` RGB in [0, 1], sides multiples of ``stride`` -> ``B`` float32
    tensors ``[n, 6]``: x1, y1, x2, y2 (input pixels), score, class; highest scores first.

    Attributes: ``names`` (class names or ``None``), ``category_ids`` (contiguous class -> dataset
    category id, or ``None``), ``stride`` (max stride), ``image_size`` (the size the model was
    trained or exported at, or ``None``), ``fixed_size`` ((h, w) a graph only accepts, else ``None``).
    """

    names: list[str] | None = None
    category_ids: list[int] | None = None
    stride: int = 32
    image_size: int | tuple[int, int] | None = None
    fixed_size: tuple[int, int] | None = None

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """The decoded predictions ``[B, N, 5 + nc]`` (cx, cy, w, h in input pixels, sigmoid
        objectness and class scores) of ``images``."""
        raise NotImplementedError

    def detect(self, images: torch.Tensor, conf_thres: float = PREDICT.conf_thres,
               iou_thres: float = PREDICT.iou_thres, max_det: int = PREDICT.max_det,
               multi_label: bool = PREDICT.multi_label, classes: list[int] | None = None,
               agnostic: bool = False) -> list[torch.Tensor]:
        """:meth:`raw` then :meth:`suppress` (``classes``: keep only these class ids; ``agnostic``:
        class-blind NMS)."""
        return self.suppress(self.raw(images), conf_thres=conf_thres, iou_thres=iou_thres, max_det=max_det,
                             multi_label=multi_label, classes=classes, agnostic=agnostic)

    @staticmethod
    def suppress(predictions: torch.Tensor, conf_thres: float = PREDICT.conf_thres,
                 iou_thres: float = PREDICT.iou_thres, max_det: int = PREDICT.max_det,
                 multi_label: bool = PREDICT.multi_label, classes: list[int] | None = None,
                 agnostic: bool = False) -> list[torch.Tensor]:
        """Decoded predictions -> detections: :func:`.nms.non_max_suppression` (defaults: the
        official ``detect.py``'s, :data:`.nms.PREDICT`)."""
        return non_max_suppression(predictions, conf_thres=conf_thres, iou_thres=iou_thres, max_det=max_det,
                                   multi_label=multi_label, classes=classes, agnostic=agnostic)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """``model`` in eval mode for the block; every submodule's mode put back afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


class TorchDetector(Detector):
    """A :class:`~yolov7_lightning.models.yolo.YOLOv7` network (training or deploy form) as a detector:
    eval mode, fp32 (autocast off), no gradients; the input in channels-last when ``channels_last``
    (the memory format the network was trained in). The network's own mode is left as it was."""

    def __init__(self, model: YOLOv7, names: list[str] | None = None, category_ids: list[int] | None = None,
                 image_size: int | None = None, channels_last: bool = False):
        self.model = model
        self.names = list(names) if names else None
        self.category_ids = [int(c) for c in category_ids] if category_ids is not None else None
        self.image_size = image_size
        self.channels_last = bool(channels_last)
        self.stride = model.max_stride

    @classmethod
    def from_checkpoint(cls, path: str | Path, purpose: str = "yolov7-predict") -> TorchDetector:
        """A training checkpoint's EMA weights, a deploy file or an official ``.pt``, read by the
        checkpoint reader (any other file is refused with a ``CheckpointError`` naming it)."""
        from ..models.checkpoint_reader import build_from, read_checkpoint

        source = read_checkpoint(path, kinds=("training", "deploy", "official"), purpose=purpose)
        hparams = source.hparams or {}
        model = build_from(source)
        channels_last = bool(hparams.get("channels_last", False))  # the memory format the model was trained in
        if channels_last:
            model.to(memory_format=torch.channels_last)
        return cls(model, names=source.names, category_ids=hparams.get("category_ids"),
                   image_size=source.image_size, channels_last=channels_last)

    @torch.no_grad()
    def heads(self, images: torch.Tensor, with_aux: bool = False) -> HeadOutputs:
        """The raw head maps of ``images`` (``with_aux``: the aux head's too, when the network has one)."""
        with _eval_mode(self.model), no_autocast(images.device):
            return self.model.forward_heads(to_memory_format(images, self.channels_last), with_aux=with_aux)

    @torch.no_grad()
    def raw(self, images: torch.Tensor) -> torch.Tensor:
        with no_autocast(images.device):
            return self.model.decode(self.heads(images))  # the network's eval output

    def detect_with_heads(self, images: torch.Tensor, **nms) -> tuple[list[torch.Tensor], HeadOutputs]:
        """:meth:`detect` (``nms``: its keyword arguments) and the head maps it came from, aux head
        included, from one forward pass."""
        heads = self.heads(images, with_aux=True)
        with torch.no_grad(), no_autocast(images.device):
            return self.suppress(self.model.decode(heads), **nms), heads
