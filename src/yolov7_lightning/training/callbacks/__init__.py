"""Training callbacks: the official EMA and the deploy export at the end of fit."""

from .ema import YOLOv7EMA
from .export import DeployExport

__all__ = ["DeployExport", "YOLOv7EMA"]
