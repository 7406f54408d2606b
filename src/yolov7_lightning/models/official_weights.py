"""The official YOLOv7 ``.pt`` format: the tensors of a file, its form and variant, and their keys in
our model. Loading them into a model is the checkpoint reader's (:func:`~.checkpoint_reader.load_weights`,
:func:`~.checkpoint_reader.load_official_weights`).

Official checkpoints are pickled whole ``nn.Module`` objects (``models.yolo.Model`` with
``models.common`` layers), unpickled as inert stand-ins (:mod:`.safe_unpickle`, nothing from the file
runs). The stand-in tree is flattened into ``{official key: tensor}`` (:class:`OfficialCheckpoint`);
:func:`our_state` puts those tensors under our keys through :func:`~.official_keys.key_map`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .arch import ARCHS
from .factory import build_model
from .official_keys import key_map
from .safe_unpickle import StandIn, UnsafeCheckpointError, load_restricted, unreadable_reason
from .yolo import YOLOv7

__all__ = ["IMPLICIT_KEYS", "OfficialCheckpoint", "UnsafeCheckpointError", "explain_mismatch", "identify_variant",
           "official_from_stand_ins", "official_from_state", "our_state", "read_official_checkpoint", "reset_implicit"]

# the implicit tensors of the detect layer (add, multiply), which the official deploy form folds into the head convs
IMPLICIT_KEYS = ("detect.ia.", "detect.im.")


@dataclass
class OfficialCheckpoint:
    """Tensors of an official checkpoint: ``state_dict`` {official key: tensor (floats as float32)}."""

    state_dict: dict[str, torch.Tensor]
    form: str  # "training" (IDetect/IAuxDetect with implicit tensors) or "deploy" (Detect)
    num_classes: int
    path: str = ""


def _flatten(node: StandIn, prefix: str, out: dict[str, torch.Tensor]) -> None:
    """Parameters and persistent buffers of a stand-in module tree, like ``nn.Module.state_dict``."""
    skip = getattr(node, "state", {}).get("_non_persistent_buffers_set")
    skip = skip if isinstance(skip, set) else set()
    for kind in ("_parameters", "_buffers"):
        for name, t in node.part(kind).items():
            if isinstance(t, torch.Tensor) and name not in skip:
                t = t.detach()
                out[prefix + name] = t.float() if t.is_floating_point() else t.clone()
    for name, sub in node.part("_modules").items():
        if isinstance(sub, StandIn):
            _flatten(sub, f"{prefix}{name}.", out)


def read_official_checkpoint(path: str | os.PathLike) -> OfficialCheckpoint:
    """Read an official YOLOv7 ``.pt`` (EMA weights if present) without executing pickled code.
    Raises FileNotFoundError, :class:`UnsafeCheckpointError`, or ValueError naming the file."""
    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"official checkpoint not found: {path}")
    try:
        obj = load_restricted(path)
    except UnsafeCheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any other failure means "not a checkpoint"
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({unreadable_reason(e)})") from None
    return official_from_stand_ins(obj, path)


def official_from_stand_ins(ckpt, path: str) -> OfficialCheckpoint:
    """The tensors of an unpickled official checkpoint (a dict whose ``model``/``ema`` is a stand-in tree)."""
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path}: not an official YOLOv7 checkpoint (expected a dict with a 'model' key)")
    root = ckpt.get("ema") if ckpt.get("ema") is not None else ckpt["model"]
    layers = root.child("model") if isinstance(root, StandIn) else None
    if not isinstance(layers, StandIn) or not layers.part("_modules"):
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


def our_state(model: YOLOv7, ckpt: OfficialCheckpoint) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """(the file's tensors under our keys, its keys without a place in ``model``, our implicit tensors
    to reset: :func:`reset_implicit`, for a deploy-form file, which folded them into the head convs)."""
    kmap = key_map(model, ckpt.form)
    state = {kmap[k]: v for k, v in ckpt.state_dict.items() if k in kmap}
    unexpected = [k for k in ckpt.state_dict if k not in kmap]
    reset = [k for k in model.state_dict() if k.startswith(IMPLICIT_KEYS)] if ckpt.form == "deploy" else []
    return state, unexpected, reset


def reset_implicit(tensors: dict[str, torch.Tensor], keys: list[str]) -> None:
    """Set the implicit ``ia`` (added) to 0 and ``im`` (multiplied) to 1, in place: the identity, which
    is exact for the head convs of a deploy-form file (the implicit values are folded into them)."""
    add, _ = IMPLICIT_KEYS
    for k in keys:
        tensors[k].fill_(0.0 if k.startswith(add) else 1.0)


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


def explain_mismatch(model: YOLOv7, ckpt: OfficialCheckpoint, expected: dict[str, tuple]) -> ValueError:
    """The clearest explanation of why ``ckpt`` does not fit ``model``, naming both sides.
    ``expected``: {official key: our shape}."""
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
