"""``weights=``: start from a checkpoint of this project or an official ``.pt`` (fine-tuning)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..models.official_weights import load_official_weights
from ..models.yolo import YOLOv7

log = logging.getLogger(__name__)


def load_pretrained(model: YOLOv7, path: str | Path) -> None:
    """Load weights into ``model``: a Lightning checkpoint of this project (its EMA ``state_dict``)
    or an official YOLOv7 ``.pt`` (read through the restricted unpickler). Tensors whose shape differs
    (another class count) are refused with a message naming both sides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a plain checkpoint: an official pickled-module file
        report = load_official_weights(model, path)
        log.info("loaded official weights %s (%s form): %d tensors, %d kept from init", path, report.form,
                 len(report.loaded), len(report.missing))
        return
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(k.startswith("model.") for k in state):
        raise ValueError(f"{path}: not a yolov7-lightning checkpoint (no 'state_dict' with 'model.*' keys)")
    state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    own = model.state_dict()
    bad = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and own[k].shape != v.shape]
    if bad:
        raise ValueError(f"{path} does not fit model {model.arch.name} with {model.num_classes} classes: "
                         + "; ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""))
    missing, unexpected = model.load_state_dict(state, strict=False)
    log.info("loaded %s: %d tensors, %d missing, %d unexpected", path, len(state), len(missing), len(unexpected))
