"""Counting the operations that force a device -> host synchronisation (used by the loss tests and
``benchmarks/assigner.py``: the batched assigner must not synchronise per image or per box).

Built on the public ``torch.profiler``: every ATen op the code runs (forward and, on CPU, backward)
is recorded with its parent op; an op that synchronises on an accelerator (a scalar read, a
``nonzero``, ``masked_select``, a tensor's truth value, boolean-mask indexing, which runs
``nonzero``) counts once, the synchronising ops nested inside it (``item`` inside ``is_nonzero``,
``nonzero`` inside ``index``) do not count again.
"""

from __future__ import annotations

from torch.profiler import ProfilerActivity, profile

SYNC_OPS = frozenset({"aten::_local_scalar_dense", "aten::item", "aten::is_nonzero", "aten::nonzero",
                      "aten::nonzero_static", "aten::masked_select"})
HOST_TENSOR_OP = "aten::lift_fresh"  # what torch.tensor / torch.as_tensor of Python data records


class SyncCounter:
    """``with SyncCounter() as c: ...``; then ``c.count`` is the number of synchronising ops, and
    ``c.host_tensors`` the number of tensors built from Python data (``torch.tensor(...)``,
    ``torch.as_tensor(list)``), each a host-to-device copy that waits for the device when built for
    one. Both are counted on any device, so a CPU run finds what would synchronise a GPU."""

    def __init__(self):
        self.count = 0
        self.host_tensors = 0
        self._profile = None

    def __enter__(self) -> SyncCounter:
        self._profile = profile(activities=[ProfilerActivity.CPU])
        self._profile.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._profile.__exit__(*exc)
        events = self._profile.events()
        self.count = sum(1 for event in events if event.name in SYNC_OPS and not _inside_sync(event))
        self.host_tensors = sum(1 for event in events if event.name == HOST_TENSOR_OP)


def _inside_sync(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in SYNC_OPS:
            return True
        parent = parent.cpu_parent
    return False
