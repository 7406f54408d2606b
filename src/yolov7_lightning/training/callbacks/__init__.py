"""Training callbacks: the checkpoints, the official EMA, the deploy export at the end of fit, the run
info (config, params/GFLOPs) and the validation pictures for the loggers; ``build.py`` builds a run's
list from the ``callbacks`` config group."""

from .checkpoints import PeriodicCheckpoint
from .ema import YOLOv7EMA
from .export import DeployExport
from .run_info import LogRunInfo
from .visuals import ValidationVisuals

__all__ = ["DeployExport", "LogRunInfo", "PeriodicCheckpoint", "ValidationVisuals", "YOLOv7EMA"]
