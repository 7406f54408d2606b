"""YOLOv7 as a PyTorch Lightning + Hydra experiment framework.

The Python API (``docs/python_api.md``)::

    from yolov7_lightning import load_detector
    det = load_detector("best.ckpt")      # a training checkpoint, deploy.pt, an official .pt or model.onnx
    r = det("image.jpg")                  # Detections(boxes, scores, class_ids, names, path, image_hw)

The names below are imported on first use (``import yolov7_lightning`` loads neither PyTorch nor
Lightning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Detections", "ImageDetector", "load_detector"]

if TYPE_CHECKING:
    from .api import Detections, ImageDetector, load_detector


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
