"""``model.weights=``: start from any file the checkpoint reader accepts (fine-tuning)."""

from __future__ import annotations

from pathlib import Path

from ..models.checkpoint_reader import LoadReport, load_weights, read_checkpoint
from ..models.yolo import YOLOv7


def load_pretrained(model: YOLOv7, path: str | Path, allow_partial: bool = False) -> LoadReport:
    """Load a training checkpoint, an official ``.pt`` (restricted unpickler) or a plain state dict
    (official ``model.N.*`` keys or this project's) into ``model``; the counts are logged. A head for
    another class count keeps its initialisation; a load covering less than half the model is an
    error unless ``allow_partial`` (``model.weights_partial=true``). Deploy files are refused."""
    ckpt = read_checkpoint(path, kinds=("training", "official", "state_dict"), purpose="model.weights")
    return load_weights(model, ckpt, allow_partial=allow_partial)
