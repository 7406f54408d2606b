"""Checkpoints written atomically (temp file in the same folder, fsync, ``os.replace``) and read
with ``torch.load(weights_only=True)``: a killed run never leaves a truncated ``last.ckpt``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..atomic import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: atomic writes, restricted (``weights_only``) reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any = "cpu", weights_only: bool | None = True) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return torch.load(path, map_location=map_location, weights_only=True)
