"""Precision and memory format of tensors at the seams of a step: the fp32 parts (loss, assigner,
decoding, NMS) run with autocast off on fp32 head maps, and image batches take the network's memory
format. Used by training (``training/precision.py`` chooses the precision) and prediction
(``eval/detector.py``)."""

from __future__ import annotations

import contextlib

import torch


def fp32_outputs(outputs):
    """Head outputs (``HeadOutputs`` or a tensor) as fp32 tensors, for the loss, assigner and decoding."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    lead = [t.float() for t in outputs.lead]
    aux = None if outputs.aux is None else [t.float() for t in outputs.aux]
    return type(outputs)(lead, aux)


def no_autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """Autocast off for ``device`` (the fp32 parts of a step run inside Lightning's autocast)."""
    device_type = torch.device(device).type
    if device_type not in ("cpu", "cuda", "xpu", "mps"):
        return contextlib.nullcontext()
    return torch.autocast(device_type, enabled=False)


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A batch of images ``[B, C, H, W]`` in channels-last when asked (other tensors untouched)."""
    if channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
