"""Counting the operations that force a device -> host synchronisation (used by the loss tests and
``benchmarks/assigner.py``: the batched assigner must not synchronise per image or per box)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class SyncCounter(TorchDispatchMode):
    """Counts ops that force a device->host synchronisation on an accelerator (``count``), and the
    tensors built from Python data (``host_tensors``: ``torch.tensor(...)``, ``torch.as_tensor(list)``),
    each a host-to-device copy that waits for the device when built for one. Both are counted on any
    device, so a CPU run finds what would synchronise a GPU."""

    SYNC_OPS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.is_nonzero.default",
                "aten.masked_select.default", "aten.item.default"}

    def __init__(self):
        super().__init__()
        self.count = 0
        self.host_tensors = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        if name in self.SYNC_OPS:
            self.count += 1
        elif name == "aten.lift_fresh.default":
            self.host_tensors += 1
        elif name.startswith("aten.index") and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool
                for a in args if isinstance(a, (list, tuple)) for i in a):
            self.count += 1  # boolean-mask indexing
        return func(*args, **kwargs)
