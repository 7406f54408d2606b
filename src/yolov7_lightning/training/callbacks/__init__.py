"""Training callbacks."""

from .ema import YOLOv7EMA

__all__ = ["YOLOv7EMA"]
