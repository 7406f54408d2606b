"""A trained model from Python: the prediction path of ``yolov7-predict`` as a function.

    from yolov7_lightning import load_detector

    det = load_detector("runs/train/mine/checkpoints/best.ckpt")   # or deploy.pt, an official .pt, model.onnx
    r = det("street.jpg")               # Detections: boxes (xyxy, original pixels), scores, class_ids, names, path
    rs = det(["a.jpg", rgb_array, tensor])   # a list: one Detections per image

Images are letterboxed to the model's input size, run through the model (:class:`.eval.TorchDetector`
or :class:`.eval.onnx_predict.OnnxDetector`), suppressed (NMS) and mapped back to the original
image: the steps and thresholds of ``yolov7-predict``, which runs through :class:`ImageDetector`
too. Unset thresholds are ``yolov7-predict``'s defaults (``conf/standalone/predict.yaml``).

Inputs: a path (str or ``Path``), a numpy array ``[H, W, 3]`` uint8 in **RGB** order (OpenCV's
``cv2.imread`` gives BGR: convert with ``cv2.cvtColor(img, cv2.COLOR_BGR2RGB)``), a torch tensor
``[3, H, W]`` RGB (uint8 0-255, or float in [0, 1], which is rounded to 8 bits as a saved image
would be), or a list of these; a 4-D array ``[B, H, W, 3]`` or tensor ``[B, 3, H, W]`` is a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.collate import ImageMeta
from .data.image_io import decode_image
from .data.letterbox import letterbox
from .eval.detector import Detector
from .errors import ConfigError
from .eval.mapping import detections_to_original

__all__ = ["Detections", "ImageDetector", "load_detector", "open_detector", "predict_defaults"]

BACKENDS = ("pytorch", "onnx")
PREDICT_KEYS = ("img_size", "conf_thres", "iou_thres", "max_det", "classes", "agnostic_nms")


@lru_cache(maxsize=1)
def _predict_config() -> dict[str, Any]:
    from omegaconf import OmegaConf

    from .cli.paths import CONFIG_DIR
    from .eval.nms import register_nms_resolver

    register_nms_resolver()  # the thresholds are ${nms:predict.*}
    cfg = OmegaConf.load(Path(CONFIG_DIR) / "standalone" / "predict.yaml")
    return {k: OmegaConf.to_container(cfg[k]) if OmegaConf.is_config(cfg[k]) else cfg[k] for k in PREDICT_KEYS}


def predict_defaults() -> dict[str, Any]:
    """``yolov7-predict``'s prediction settings as its config file sets them (``img_size``,
    ``conf_thres``, ``iou_thres``, ``max_det``, ``classes``, ``agnostic_nms``)."""
    return dict(_predict_config())


@dataclass(frozen=True, eq=False)
class Detections:
    """The detections of one image, highest score first.

    ``boxes`` float32 ``[n, 4]``: x1, y1, x2, y2 in pixels of the original image; ``scores`` float32
    ``[n]``; ``class_ids`` int64 ``[n]`` (contiguous, 0-based); ``names`` the class name of each
    detection (the model's names; the id as text when the model has none); ``path`` the image file
    (``None`` for arrays and tensors); ``image_hw`` the original image's (height, width)."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: list[str]
    path: str | None = None
    image_hw: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return len(self.scores)


def open_detector(path: str | Path, backend: str | None = None, device: str | torch.device = "cpu",
                  purpose: str = "load_detector") -> Detector:
    """The :class:`~.eval.detector.Detector` of a file: ``backend="onnx"`` (or a ``.onnx`` file when
    ``backend`` is ``None``) an exported graph on ONNX Runtime, otherwise a training checkpoint
    (its EMA weights), a deploy file or an official ``.pt``."""
    backend = backend or ("onnx" if Path(path).suffix.lower() == ".onnx" else "pytorch")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    device = torch.device(device)
    if backend == "onnx":
        from .eval.onnx_predict import OnnxDetector

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" else None
        return OnnxDetector(path, providers=providers)
    from .eval.detector import TorchDetector

    detector = TorchDetector.from_checkpoint(path, purpose=purpose)
    detector.model.to(device)
    return detector


def input_size(detector: Detector, img_size: int | Sequence[int] | None = None) -> tuple[int, int]:
    """The square network input for ``img_size`` (``None``: the size the model was trained or
    exported at, else 640), rounded up to a multiple of the max stride; a graph exported for one
    size gets that size."""
    if detector.fixed_size:
        return tuple(detector.fixed_size)
    size = img_size or detector.image_size or 640
    size = size if isinstance(size, (int, float)) else max(size)
    s = detector.stride
    side = math.ceil(int(size) / s) * s
    return side, side


def class_filter(classes, names: Sequence[str]) -> list[int] | None:
    """``classes``: class ids or names -> contiguous ids (an unknown one is an error naming it)."""
    if classes is None:
        return None
    wanted = [classes] if isinstance(classes, (int, str)) else list(classes)
    ids = []
    for c in wanted:
        if isinstance(c, str) and not c.lstrip("-").isdigit():
            if c not in names:
                raise ConfigError(f"classes: unknown class name {c!r}; the model's classes: {', '.join(names)}")
            ids.append(list(names).index(c))
        else:
            ids.append(int(c))
    bad = [i for i in ids if not 0 <= i < max(len(names), 1)] if names else [i for i in ids if i < 0]
    if bad:
        raise ConfigError(f"classes: ids {bad} are outside the model's {len(names)} classes (0..{len(names) - 1})")
    return ids


def _rgb_images(item: Any) -> list[tuple[np.ndarray, str | None]]:
    """One input (path, array, tensor; 4-D: a batch) -> [(RGB uint8 [H, W, 3], path or None)]."""
    if isinstance(item, (str, Path)):
        return [(decode_image(Path(item)), str(item))]
    if isinstance(item, torch.Tensor):
        x = item.detach().cpu()
        if x.ndim == 4:
            return [r for one in x for r in _rgb_images(one)]
        if x.ndim != 3 or x.shape[0] != 3:
            raise ConfigError(f"an image tensor must be [3, H, W] (or [B, 3, H, W]) RGB, got {tuple(x.shape)}")
        if x.dtype != torch.uint8:
            if not x.is_floating_point():
                raise ConfigError(f"an image tensor must be uint8 (0-255) or float (0-1), got {x.dtype}")
            lo, hi = float(x.min()), float(x.max())
            if lo < 0 or hi > 1:
                raise ConfigError(f"a float image tensor must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
            x = x.mul(255).round().to(torch.uint8)
        return [(np.ascontiguousarray(x.permute(1, 2, 0).numpy()), None)]
    if isinstance(item, np.ndarray):
        if item.ndim == 4:
            return [r for one in item for r in _rgb_images(one)]
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
            raise ConfigError(f"an image array must be uint8 [H, W, 3] RGB (or [B, H, W, 3]), "
                             f"got {item.dtype} {item.shape}")
        return [(np.ascontiguousarray(item), None)]
    raise TypeError(f"cannot predict on {type(item).__name__}: give a path, a uint8 RGB array [H, W, 3], "
                    "a tensor [3, H, W] or a list of these")


class ImageDetector:
    """A :class:`~.eval.detector.Detector` with ``yolov7-predict``'s settings: RGB uint8 images of
    any size in, detections in original image pixels out. ``None`` settings are the command's
    defaults (:func:`predict_defaults`); ``classes`` keeps only these class ids or names,
    ``agnostic`` suppresses across classes, ``batch_size`` images go through the model at once
    (1, as the command: larger batches give the same detections up to float rounding)."""

    def __init__(self, detector: Detector, img_size: int | Sequence[int] | None = None, conf: float | None = None,
                 iou: float | None = None, max_det: int | None = None, classes=None, agnostic: bool | None = None,
                 batch_size: int = 1):
        defaults = _predict_config()
        self.detector = detector
        self.names: list[str] = list(detector.names or [])
        self.size = input_size(detector, img_size if img_size is not None else defaults["img_size"])
        self.conf = float(defaults["conf_thres"] if conf is None else conf)
        self.iou = float(defaults["iou_thres"] if iou is None else iou)
        self.max_det = int(defaults["max_det"] if max_det is None else max_det)
        self.classes = class_filter(defaults["classes"] if classes is None else classes, self.names)
        self.agnostic = bool(defaults["agnostic_nms"] if agnostic is None else agnostic)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        model = getattr(detector, "model", None)
        self.device = next(model.parameters()).device if model is not None else torch.device("cpu")

    def detect(self, images: Sequence[np.ndarray], paths: Sequence[str | Path | None] | None = None,
               first_id: int = 0) -> list[tuple[torch.Tensor, ImageMeta]]:
        """RGB uint8 ``[H, W, 3]`` images -> per image (detections ``[n, 6]`` in network-input pixels,
        its :class:`~.data.collate.ImageMeta`, which maps them back: ``meta.to_original``)."""
        paths = list(paths) if paths is not None else [None] * len(images)
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            boxed, metas = [], []
            for k, image in enumerate(chunk):
                x, lb = letterbox(image, self.size)
                boxed.append(torch.from_numpy(x).permute(2, 0, 1))
                metas.append(ImageMeta(first_id + start + k, paths[start + k], image.shape[:2], self.size,
                                       lb.ratio_hw, lb.pad_tl))
            x = torch.stack(boxed).to(self.device).float().div(255)
            dets = self.detector.detect(x, conf_thres=self.conf, iou_thres=self.iou, max_det=self.max_det,
                                        classes=self.classes, agnostic=self.agnostic)
            out.extend((d.cpu(), m) for d, m in zip(dets, metas))
        return out

    def detections(self, det: torch.Tensor, meta: ImageMeta) -> Detections:
        """One image's :meth:`detect` output as :class:`Detections` (boxes in original pixels)."""
        original = detections_to_original(det, meta)
        ids = original[:, 5].long()
        names = [self.names[i] if 0 <= i < len(self.names) else str(i) for i in ids.tolist()]
        return Detections(boxes=original[:, :4].numpy().astype(np.float32),
                          scores=original[:, 4].numpy().astype(np.float32),
                          class_ids=ids.numpy(), names=names, path=None if meta.path is None else str(meta.path),
                          image_hw=tuple(int(v) for v in meta.orig_hw))

    def __call__(self, images) -> Detections | list[Detections]:
        """Detections of one image (a path, an array, a tensor ``[3, H, W]``), or a list of them for a
        list of images or a 4-D batch."""
        single = not isinstance(images, (list, tuple)) and not (
            isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4)
        inputs = [images] if single else list(images)
        results = []
        for start in range(0, len(inputs), self.batch_size):  # decoded a batch at a time
            items = [r for item in inputs[start:start + self.batch_size] for r in _rgb_images(item)]
            results += [self.detections(d, m) for d, m in self.detect([i for i, _ in items], [p for _, p in items])]
        return results[0] if single else results

    def __repr__(self) -> str:
        return (f"ImageDetector({type(self.detector).__name__}, input {self.size[0]}x{self.size[1]}, "
                f"conf {self.conf}, iou {self.iou}, classes {self.names})")


def load_detector(path: str | Path, img_size: int | Sequence[int] | None = None, conf: float | None = None,
                  iou: float | None = None, device: str | torch.device = "cpu", max_det: int | None = None,
                  classes=None, agnostic: bool | None = None, batch_size: int = 1,
                  backend: str | None = None) -> ImageDetector:
    """A detector from a training checkpoint (``best.ckpt``: its EMA weights), a deploy file
    (``deploy.pt``), an official ``.pt`` or an exported ``model.onnx`` (ONNX Runtime; ``backend``:
    ``"pytorch"`` or ``"onnx"``, by default from the file's suffix). ``img_size``: the network input
    (``None``: the size the model was trained or exported at); ``conf``, ``iou``, ``max_det``,
    ``classes``, ``agnostic``: ``yolov7-predict``'s ``conf_thres``, ``iou_thres``, ``max_det``,
    ``classes``, ``agnostic_nms`` (``None``: its defaults); ``device``: ``"cpu"``, ``"cuda"``, ...

    Returns an :class:`ImageDetector`: call it on an image or a list of images."""
    return ImageDetector(open_detector(path, backend, device), img_size=img_size, conf=conf, iou=iou,
                         max_det=max_det, classes=classes, agnostic=agnostic, batch_size=batch_size)
