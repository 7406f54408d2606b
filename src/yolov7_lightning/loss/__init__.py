"""The YOLOv7 loss (lead + weighted aux) and its box geometry."""

from .spec import LossSpec
from .yolov7_loss import LossOutput, YOLOv7Loss, scaled_gains

__all__ = ["LossOutput", "LossSpec", "YOLOv7Loss", "scaled_gains"]
