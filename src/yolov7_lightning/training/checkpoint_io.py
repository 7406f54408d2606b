"""Checkpoints written atomically (temp file in the same folder, fsync, ``os.replace``) and read
through the checkpoint reader (``weights_only``): a killed run never leaves a truncated ``last.ckpt``,
and a bad ``ckpt_path`` is one line naming the file and what is wrong with it."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..atomic import atomic_torch_save
from ..models.checkpoint_reader import read_checkpoint
from .module import NONFINITE_HINT, NonFiniteLossError


def nonfinite_tensors(obj: Any, prefix: str = "") -> list[str]:
    """Keys of the floating-point tensors holding NaN or inf anywhere in a (nested) checkpoint."""
    if isinstance(obj, torch.Tensor):
        return [prefix] if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    return [k for key, value in items for k in nonfinite_tensors(value, f"{prefix}.{key}" if prefix else str(key))]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: atomic writes, restricted (``weights_only``) reads. A checkpoint with a
    non-finite tensor is never written: the run stops and the previous file stays as it was."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        bad = nonfinite_tensors({k: checkpoint[k] for k in ("state_dict", "current_model_state", "optimizer_states")
                                 if k in checkpoint})
        if bad:
            raise NonFiniteLossError(f"refusing to write {path}: {len(bad)} tensor(s) hold NaN or inf (e.g. "
                                     f"{', '.join(bad[:3])}); the previous file is kept. {NONFINITE_HINT}")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any = "cpu", weights_only: bool | None = True) -> dict[str, Any]:
        return read_checkpoint(path, kinds=("training",), purpose="ckpt_path (resume)").raw
