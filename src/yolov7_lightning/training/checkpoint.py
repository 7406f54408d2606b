"""Load a training checkpoint of this project for evaluation, prediction or export."""

from __future__ import annotations

from pathlib import Path

import torch

from ..models.checkpoint_reader import CheckpointFile, read_checkpoint
from .module import YOLOv7Module


def module_from(ckpt: CheckpointFile) -> YOLOv7Module:
    """The :class:`YOLOv7Module` of a ``training`` :class:`CheckpointFile`, in eval mode, with its EMA
    weights (what ``state_dict`` holds when the EMA callback was on)."""
    module = YOLOv7Module(**ckpt.hparams)
    module.load_state_dict(ckpt.raw["state_dict"])
    return module.eval()


def load_module(path: str | Path, map_location: str | torch.device = "cpu", purpose: str = "") -> YOLOv7Module:
    """:func:`module_from` a file read by the checkpoint reader (``weights_only``); any other kind of
    file is refused with a :class:`~yolov7_lightning.errors.CheckpointError`."""
    module = module_from(read_checkpoint(path, kinds=("training",), purpose=purpose or "this command"))
    return module.to(map_location)
