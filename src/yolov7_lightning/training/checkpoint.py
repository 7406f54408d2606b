"""Load a training checkpoint of this project for evaluation, prediction or export."""

from __future__ import annotations

from pathlib import Path

import torch

from .module import YOLOv7Module


def load_module(path: str | Path, map_location: str | torch.device = "cpu") -> YOLOv7Module:
    """The :class:`YOLOv7Module` of a checkpoint, in eval mode, with its EMA weights (what
    ``state_dict`` holds when the EMA callback was on). Read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or "hyper_parameters" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a yolov7-lightning training checkpoint (no hyper_parameters/state_dict); "
                         "official .pt files go through weights=... or yolov7-export")
    module = YOLOv7Module(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()
