"""Unpickling a checkpoint without running code from it: the bottom of the checkpoint stack.

Every file the project reads goes through :func:`load_restricted`: ``torch.load(weights_only=True)``
with the official YOLOv7 class names (``models.yolo.Model``, ``models.common.Conv``, ...) allow-listed,
each mapped to an inert stand-in (:class:`StandIn`) that merely stores the pickled attribute dict.
Any other global (``os.system``, ``builtins.eval``, ...) is refused with :class:`UnsafeCheckpointError`
naming the file and the global, before anything runs. :func:`unreadable_reason` words the loader's
other failures (truncated, corrupt, not a checkpoint) in one short phrase.

This module imports nothing else from the package.
"""

from __future__ import annotations

import functools
import importlib
import pickle
import re
import zipfile

import torch

_OFFICIAL = {
    "models.yolo": ("Model", "Detect", "IDetect", "IAuxDetect", "IBin", "IKeypoint"),
    "models.common": ("Conv", "RepConv", "SPPCSPC", "DownC", "MP", "SP", "ReOrg", "Concat", "Shortcut",
                      "ImplicitA", "ImplicitM", "Chuncat", "Foldcut", "SPP", "SPPF", "Focus", "Bottleneck"),
    "torch.nn.modules.conv": ("Conv2d",),
    "torch.nn.modules.batchnorm": ("BatchNorm2d",),
    "torch.nn.modules.activation": ("SiLU", "LeakyReLU", "ReLU", "Sigmoid", "Hardswish"),
    "torch.nn.modules.pooling": ("MaxPool2d",),
    "torch.nn.modules.upsampling": ("Upsample",),
    "torch.nn.modules.container": ("Sequential", "ModuleList"),
    "torch.nn.modules.linear": ("Identity",),
}
_REFUSED = (r"GLOBAL (\S+) was not an allowed global", r"GLOBAL (\S+) whose module \S+ is blocked",
            r"unrecognized function (.+?)(?: which belongs|$)", r"new object for .* but got (.+)$",
            r"Can only build .* but got (.+)$")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint references a global (function or class) that is not an official YOLOv7 class."""


class StandIn:
    """Inert replacement for an official module class: keeps the pickled ``__dict__`` as ``state``."""

    official_name = ""

    def __setstate__(self, state) -> None:
        self.state = state if isinstance(state, dict) else {}

    def part(self, key: str) -> dict:
        """A dict attribute of the pickled module (``_parameters``, ``_buffers``, ``_modules``), else {}."""
        value = getattr(self, "state", {}).get(key)
        return value if isinstance(value, dict) else {}

    def child(self, name: str):
        return self.part("_modules").get(name)

    def __repr__(self) -> str:
        return f"<stand-in {self.official_name}>"


def _stand_in(full_name: str) -> type:
    module, _, name = full_name.rpartition(".")
    return type(name, (StandIn,), {"official_name": full_name, "__module__": f"official:{module}"})


def _numpy_globals() -> list[tuple[object, str]]:
    """numpy arrays/scalars (``best_fitness`` of unstripped checkpoints): torch's documented allowlist."""
    try:
        import numpy as np
        multiarray = importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:
        try:
            import numpy as np
            multiarray = importlib.import_module("numpy.core.multiarray")
        except ImportError:
            return []
    pairs = [(getattr(multiarray, n), f"{pkg}.multiarray.{n}") for pkg in ("numpy.core", "numpy._core")
             for n in ("_reconstruct", "scalar")]
    dtypes = {type(np.dtype(c)) for c in np.typecodes["All"]}  # BUILD checks the dtype's own class
    return pairs + [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")] + \
        [(t, f"numpy.dtypes.{t.__name__}") for t in dtypes]


@functools.lru_cache(maxsize=1)
def _allowed_globals() -> tuple[tuple[object, str], ...]:
    """``(object, "module.Name")`` pairs for ``torch.serialization.safe_globals``."""
    return tuple([(_stand_in(f"{mod}.{n}"), f"{mod}.{n}") for mod, names in _OFFICIAL.items() for n in names] +
                 _numpy_globals())


def _refused_global(path: str, names: list[str]) -> UnsafeCheckpointError:
    shown = [f"{n} (os.{n.split('.', 1)[1]})" if n.startswith(("posix.", "nt.")) else n for n in sorted(names)]
    return UnsafeCheckpointError(f"{path}: refusing to unpickle global(s) {', '.join(shown)}: not an official "
                                 "YOLOv7 class; the checkpoint may run code when loaded naively")


def load_restricted(path: str):
    """``torch.load(weights_only=True)`` with the official classes allow-listed as stand-ins. Raises
    :class:`UnsafeCheckpointError` for any other global, else the loader's own exception."""
    with torch.serialization.safe_globals(list(_allowed_globals())):
        try:  # static scan first (zip checkpoints): names every refused global at once
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except (ValueError, RuntimeError):  # legacy (non-zip) format: the unpickler refuses instead
            unsafe = []
        if unsafe:
            raise _refused_global(path, unsafe)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            for pattern in _REFUSED:
                if m := re.search(pattern, str(e), re.MULTILINE):
                    raise _refused_global(path, [m.group(1)]) from None
            raise


def unreadable_reason(e: BaseException) -> str:
    """A short reason for an unreadable file, without PyTorch's advice to retry unsafely."""
    text = str(e)
    if isinstance(e, EOFError) or "Ran out of input" in text or "EOF" in text:
        return "truncated (the data ends early)"
    if "PytorchStreamReader" in text or isinstance(e, zipfile.BadZipFile):
        return "truncated or corrupt (not a complete PyTorch zip archive)"
    if isinstance(e, UnicodeDecodeError) or "invalid load key" in text or "could not find MARK" in text:
        return "not a PyTorch checkpoint (unreadable content)"
    if isinstance(e, pickle.UnpicklingError) and "GLOBAL" not in text:
        first = next((s.strip() for s in text.splitlines()[::-1] if s.strip() and "weights_only" not in s
                      and not s.strip().startswith(("Check the doc", "Please file", "In PyTorch"))), "")
        return f"not a PyTorch checkpoint (unreadable content{': ' + first[:120] if first else ''})"
    lines = [s.strip() for s in text.splitlines() if s.strip() and "weights_only" not in s
             and not s.strip().startswith(("Check the doc", "Please file an issue", "In PyTorch"))]
    return f"{type(e).__name__}: {lines[-1][:160] if lines else 'no details'}"
