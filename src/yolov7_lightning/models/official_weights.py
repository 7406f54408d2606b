"""Import the official YOLOv7 ``.pt`` checkpoints, without running code from the file.

Official checkpoints are pickled whole ``nn.Module`` objects (``models.yolo.Model`` with
``models.common`` layers). :func:`read_official_checkpoint` unpickles them with torch's
``weights_only`` unpickler, allow-listing only the official class names, each mapped to an inert
stand-in (:class:`_StandIn`) that merely stores the pickled attribute dict. Any other global
(``os.system``, ``builtins.eval``, ...) is refused with :class:`UnsafeCheckpointError`. The stand-in
tree is then flattened into ``{official key: tensor}``; :func:`load_official_weights` copies it
into our model through :func:`~.official_keys.key_map`.
"""

from __future__ import annotations

import functools
import importlib
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .arch import ARCHS
from .factory import build_model
from .official_keys import key_map
from .yolo import YOLOv7

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


class _StandIn:
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
    return type(name, (_StandIn,), {"official_name": full_name, "__module__": f"official:{module}"})


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


@dataclass
class OfficialCheckpoint:
    """Tensors of an official checkpoint: ``state_dict`` {official key: tensor (floats as float32)}."""

    state_dict: dict[str, torch.Tensor]
    form: str  # "training" (IDetect/IAuxDetect with implicit tensors) or "deploy" (Detect)
    num_classes: int
    path: str = ""


@dataclass
class LoadReport:
    """What :func:`load_official_weights` did. ``missing``: our tensors the checkpoint lacks (kept as
    they were); ``unexpected``: checkpoint tensors without a place in the model (aux head of a model
    built without one); ``implicit_reset``: ``ia``/``im`` set to 0/1 for a deploy-form checkpoint."""

    form: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    implicit_reset: list[str] = field(default_factory=list)


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


def unpickle(path: str):
    """:func:`load_restricted`; a file it cannot read is a ValueError naming it."""
    try:
        return load_restricted(path)
    except UnsafeCheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any other failure means "not a checkpoint"
        raise _unreadable(path, e) from None


_unpickle = unpickle


def _unreadable(path: str, e: BaseException) -> ValueError:
    from .checkpoint_reader import unreadable_reason

    return ValueError(f"{path}: not a readable PyTorch checkpoint ({unreadable_reason(e)})")


def _flatten(node: _StandIn, prefix: str, out: dict[str, torch.Tensor]) -> None:
    """Parameters and persistent buffers of a stand-in module tree, like ``nn.Module.state_dict``."""
    skip = getattr(node, "state", {}).get("_non_persistent_buffers_set")
    skip = skip if isinstance(skip, set) else set()
    for kind in ("_parameters", "_buffers"):
        for name, t in node.part(kind).items():
            if isinstance(t, torch.Tensor) and name not in skip:
                t = t.detach()
                out[prefix + name] = t.float() if t.is_floating_point() else t.clone()
    for name, sub in node.part("_modules").items():
        if isinstance(sub, _StandIn):
            _flatten(sub, f"{prefix}{name}.", out)


def read_official_checkpoint(path: str | os.PathLike) -> OfficialCheckpoint:
    """Read an official YOLOv7 ``.pt`` (EMA weights if present) without executing pickled code."""
    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"official checkpoint not found: {path}")
    return official_from_stand_ins(_unpickle(path), path)


def official_from_stand_ins(ckpt, path: str) -> OfficialCheckpoint:
    """The tensors of an unpickled official checkpoint (a dict whose ``model``/``ema`` is a stand-in tree)."""
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path}: not an official YOLOv7 checkpoint (expected a dict with a 'model' key)")
    root = ckpt.get("ema") if ckpt.get("ema") is not None else ckpt["model"]
    layers = root.child("model") if isinstance(root, _StandIn) else None
    if not isinstance(layers, _StandIn) or not layers.part("_modules"):
        raise ValueError(f"{path}: 'model' is not an official YOLOv7 Model (got {type(root).__name__})")
    state_dict: dict[str, torch.Tensor] = {}
    _flatten(root, "", state_dict)
    return official_from_state(state_dict, path)


def official_from_state(state_dict: dict[str, torch.Tensor], path: str) -> OfficialCheckpoint:
    """An official state dict (``model.<layer>.*`` keys, e.g. ``Model.state_dict()``): its form and
    class count from the last (detect) layer."""
    state_dict = {k: (v.detach().float() if v.is_floating_point() else v.detach()) for k, v in state_dict.items()}
    layers = sorted({int(k.split(".")[1]) for k in state_dict if k.split(".")[1].isdigit()})
    last = layers[-1] if layers else None
    head, anchors = state_dict.get(f"model.{last}.m.0.weight"), state_dict.get(f"model.{last}.anchors")
    if head is None or anchors is None or anchors.ndim < 2:
        raise ValueError(f"{path}: last layer model.{last} is not a YOLOv7 detect layer (no m.0.weight/anchors)")
    form = "training" if f"model.{last}.ia.0.implicit" in state_dict else "deploy"
    return OfficialCheckpoint(state_dict, form, head.shape[0] // anchors.shape[1] - 5, path)


def _signature(model: YOLOv7, form: str) -> dict[str, tuple]:
    sd = model.state_dict()
    return {ok: tuple(sd[k].shape) for ok, k in key_map(model, form).items()}


def identify_variant(ckpt: OfficialCheckpoint) -> str | None:
    """The official variant whose ``ckpt.form`` config has exactly the checkpoint's keys and shapes."""
    got = {k: tuple(v.shape) for k, v in ckpt.state_dict.items()}
    for name in ARCHS:
        with torch.device("meta"):
            ref = build_model(name, num_classes=max(ckpt.num_classes, 1))
        if _signature(ref, ckpt.form) == got:
            return name
    return None


def _mismatch(model: YOLOv7, ckpt: OfficialCheckpoint, expected: dict[str, tuple]) -> ValueError:
    """The clearest explanation of why ``ckpt`` does not fit ``model``, naming both sides."""
    name, src = model.arch.name, ckpt.path or "checkpoint"
    variant = identify_variant(ckpt)
    if variant is not None and variant != name:
        return ValueError(f"{src}: checkpoint is {variant} ({ckpt.form} form, {ckpt.num_classes} classes), "
                          f"model is {name} ({model.num_classes} classes); build the model as {variant}")
    if ckpt.num_classes != model.num_classes:
        return ValueError(f"{src}: checkpoint has {ckpt.num_classes} classes, model {name} has "
                          f"{model.num_classes}; build the model with num_classes={ckpt.num_classes}")
    got = {k: tuple(v.shape) for k, v in ckpt.state_dict.items()}
    shapes = [f"{k}: checkpoint {got[k]} vs model {s}" for k, s in expected.items() if k in got and got[k] != s]
    absent = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    return ValueError(f"{src} ({ckpt.form} form) does not fit model {name}: {len(shapes)} shape mismatch(es) "
                      f"{shapes[:3]}, {len(absent)} model tensor(s) missing from the checkpoint {absent[:3]}, "
                      f"{len(extra)} checkpoint tensor(s) unknown to the model {extra[:3]}")


@torch.no_grad()
def load_official_weights(model: YOLOv7, source: str | os.PathLike | OfficialCheckpoint) -> LoadReport:
    """Copy an official checkpoint (path or :class:`OfficialCheckpoint`) into ``model`` (training form).

    Every tensor of the official config must be present with our shape, anchors included (they
    come from the checkpoint). A deploy-form checkpoint has the implicit tensors folded into the
    head convs, so ``detect.ia`` is set to 0 and ``detect.im`` to 1 (exact). Raises ValueError for
    another variant, another class count or other shapes.
    """
    ckpt = source if isinstance(source, OfficialCheckpoint) else read_official_checkpoint(source)
    kmap = key_map(model, ckpt.form)
    ours = model.state_dict()
    expected = {ok: tuple(ours[k].shape) for ok, k in kmap.items()}
    got = ckpt.state_dict
    extra = [k for k in got if k not in expected]
    aux_dropped = model.arch.aux_default and not model.aux_head
    if (ckpt.num_classes != model.num_classes or any(k not in got or tuple(got[k].shape) != s
                                                     for k, s in expected.items()) or (extra and not aux_dropped)):
        raise _mismatch(model, ckpt, expected)
    report = LoadReport(ckpt.form, unexpected=extra)
    for ok, k in kmap.items():
        ours[k].copy_(got[ok].to(dtype=ours[k].dtype, device=ours[k].device))
        report.loaded.append(k)
    done = set(report.loaded)
    for k, t in ours.items():
        if k in done:
            continue
        if ckpt.form == "deploy" and k.startswith(("detect.ia.", "detect.im.")):
            t.fill_(0.0 if k.startswith("detect.ia.") else 1.0)
            report.implicit_reset.append(k)
        else:
            report.missing.append(k)
    return report
