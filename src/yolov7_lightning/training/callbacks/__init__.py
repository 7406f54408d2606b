"""Training callbacks: the official EMA, the deploy export at the end of fit, the run info (config,
params/GFLOPs) and the validation pictures for the loggers."""

from .ema import YOLOv7EMA
from .export import DeployExport
from .run_info import LogRunInfo
from .visuals import ValidationVisuals

__all__ = ["DeployExport", "LogRunInfo", "ValidationVisuals", "YOLOv7EMA"]
