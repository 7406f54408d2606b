"""The one checkpoint reader behind every entry point (``ckpt_path``, ``model.weights``, eval,
predict, export). Lightning-free: it returns the spec, names, image size and tensors of a file.

:func:`read_checkpoint` identifies the file and refuses anything else with a one-line
:class:`CheckpointError` naming the file and what is wrong with it:

============== =====================================================================================
kind           what the file is
============== =====================================================================================
``training``   a Lightning checkpoint of this project (``hyper_parameters`` + ``state_dict``; the EMA
               weights when the EMA was on)
``deploy``     a deploy file of this project (``format: yolov7-lightning-deploy``, fused tensors)
``official``   an official YOLOv7 ``.pt`` (pickled modules, read by the restricted unpickler) or an
               official plain state dict (``model.<layer>.*`` keys)
``state_dict`` this project's own plain state dict (``YOLOv7.state_dict()`` keys, or the Lightning
               module's ``model.*`` keys)
============== =====================================================================================

A zip checkpoint's records are checked against their CRC-32 first (:func:`verify_archive`): a
damaged file is refused, naming the record. Every file is read with ``torch.load(weights_only=True)`` (the official class names allow-listed as
inert stand-ins): a pickle that would run code is refused for safety, never loaded.
:func:`load_weights` copies a file's tensors into a model and returns the loaded / shape-mismatched /
missing / unexpected counts; a load that covers less than :data:`MIN_LOADED` of the model's values
is an error unless ``allow_partial``.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..specs import to_spec
from .factory import build_model
from .spec import ModelSpec, ScalingSpec
from .yolo import YOLOv7

log = logging.getLogger(__name__)

DEPLOY_FORMAT = "yolov7-lightning-deploy"
DEPLOY_VERSION = 1
KINDS = ("training", "deploy", "official", "state_dict")
DESCRIBE = {"training": "training checkpoint", "deploy": "deploy file", "official": "official YOLOv7 checkpoint",
            "state_dict": "plain state dict"}
MIN_LOADED = 0.5  # share of the model's values a load must cover unless a partial load is intended
BUILD_KEYS = tuple(f.name for f in fields(ModelSpec))  # what a file records of its network
SCALING_KEYS = tuple(f.name for f in fields(ScalingSpec))
_OFFICIAL_KEY = re.compile(r"^model\.\d+\.")


class CheckpointError(UserError):
    """A file that cannot be used as asked: one line naming the file and what is wrong with it."""


def model_spec(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`ModelSpec` fields of a ``model`` config or hyper-parameters as a plain dict, the
    way files record them: the fields given (one unset or None takes the spec's default); other keys
    (``_target_``, ``weights``) are dropped."""
    try:
        from omegaconf import DictConfig, OmegaConf
        if isinstance(model_cfg, DictConfig):
            model_cfg = OmegaConf.to_container(model_cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    spec = {k: copy.deepcopy(model_cfg[k]) for k in BUILD_KEYS if k in model_cfg and model_cfg[k] is not None}
    if "scaling" in spec:
        spec["scaling"] = {k: v for k, v in dict(spec["scaling"]).items() if k in SCALING_KEYS}
    if "variant" not in spec:
        raise ValueError(f"model config has no 'variant': {dict(model_cfg)}")
    return spec


def default_names(num_classes: int) -> list[str]:
    return [f"class{i}" for i in range(num_classes)]


def default_size(model: YOLOv7) -> int:
    return 1280 if model.max_stride == 64 else 640


@dataclass
class CheckpointFile:
    """What :func:`read_checkpoint` found. ``state``: tensors under this project's keys (``training``:
    the EMA ``state_dict`` without the ``model.`` prefix; ``deploy``: the fused form; ``official``:
    empty, see ``official``). ``spec``: the :class:`ModelSpec` fields it records (:func:`model_spec`;
    None for a plain state dict; for an official file the identified variant, or None). ``raw``: the whole object that was read."""

    path: str
    kind: str
    state: dict[str, torch.Tensor]
    spec: dict[str, Any] | None = None
    names: list[str] | None = None
    image_size: int | None = None
    hparams: dict[str, Any] | None = None
    official: Any = None  # OfficialCheckpoint
    raw: Any = None

    @property
    def description(self) -> str:
        return DESCRIBE[self.kind]


# ---- reading --------------------------------------------------------------------------------------
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


def verify_archive(path: str | os.PathLike) -> None:
    """Check the CRC-32 of every record of a zip checkpoint (PyTorch's loader does not: a flipped
    byte inside a tensor would load as a wrong weight). Raises :class:`CheckpointError` naming the
    first damaged record; a file that is not a complete zip archive is left to the loader."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as e:
        raise CheckpointError(f"{path}: damaged file ({e}); use another copy or an earlier checkpoint") from None
    if bad is not None:
        raise CheckpointError(f"{path}: damaged file (CRC mismatch in {bad}): its content changed after it was "
                              "written (disk or copy error); use another copy or an earlier checkpoint")


def read_object(path: str | os.PathLike) -> Any:
    """The object stored in ``path``, read with ``weights_only=True`` (official classes as inert stand-ins).
    Raises :class:`CheckpointError` for a missing, empty, truncated, corrupt or unsafe file."""
    from .official_weights import UnsafeCheckpointError, load_restricted

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes)")
    verify_archive(path)
    try:
        return load_restricted(str(path))
    except UnsafeCheckpointError as e:
        raise CheckpointError(f"{e}; refused for safety, nothing from the file was run") from None
    except Exception as e:  # noqa: BLE001 - the unpickler raises many types for garbage
        raise CheckpointError(f"{path}: {unreadable_reason(e)}") from None


def _tensors(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj) and \
            all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    return None


def classify(obj: Any, path: str) -> CheckpointFile:
    """Identify an object read from ``path`` (see the module docstring), or raise :class:`CheckpointError`."""
    from .official_weights import official_from_stand_ins, official_from_state

    if isinstance(obj, dict) and obj.get("format") == DEPLOY_FORMAT:
        if int(obj.get("version", 0)) > DEPLOY_VERSION:
            raise CheckpointError(f"{path}: deploy file version {obj['version']} is newer than this code "
                                  f"({DEPLOY_VERSION})")
        state = _tensors(obj.get("state_dict"))
        if state is None or not isinstance(obj.get("model"), Mapping):
            raise CheckpointError(f"{path}: deploy file without 'model' spec or tensors in 'state_dict'")
        return CheckpointFile(path, "deploy", state, dict(obj["model"]), list(obj.get("names") or []) or None,
                              int(obj.get("image_size") or 0) or None, raw=obj)
    if isinstance(obj, dict) and "hyper_parameters" in obj and "state_dict" in obj:
        hp = obj["hyper_parameters"]
        sd = obj["state_dict"] if isinstance(obj["state_dict"], Mapping) else {}
        state = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.") and isinstance(v, torch.Tensor)}
        if not isinstance(hp, Mapping) or not isinstance(hp.get("model"), Mapping) or not state:
            raise CheckpointError(f"{path}: a Lightning checkpoint, but not of this project (no 'model' "
                                  "hyper-parameters or no 'model.*' tensors)")
        try:
            spec = model_spec(hp["model"])
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
        return CheckpointFile(path, "training", state, spec, list(hp.get("names") or []) or None,
                              int(hp.get("image_size") or 0) or None, hparams=dict(hp), raw=obj)
    if isinstance(obj, dict) and "model" in obj and not isinstance(obj["model"], (torch.Tensor, Mapping)):
        official = official_from_stand_ins(obj, path)  # raises ValueError naming the file
        return CheckpointFile(path, "official", {}, official=official, raw=obj)
    state = _tensors(obj.get("state_dict")) if isinstance(obj, dict) and "state_dict" in obj else _tensors(obj)
    if state is None and isinstance(obj, dict) and "model" in obj:
        state = _tensors(obj["model"])
    if state is None:
        what = f"a dict with keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path}: not a YOLOv7 checkpoint ({what}); expected a training checkpoint, a "
                              "deploy file, an official YOLOv7 .pt or a state dict")
    if all(_OFFICIAL_KEY.match(k) for k in state):
        return CheckpointFile(path, "official", {}, official=official_from_state(state, path), raw=obj)
    if all(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items()}
    return CheckpointFile(path, "state_dict", state, raw=obj)


def read_checkpoint(path: str | os.PathLike, kinds: tuple[str, ...] = KINDS, purpose: str = "") -> CheckpointFile:
    """Read and identify ``path``; a kind outside ``kinds`` is refused, naming what it is and what
    ``purpose`` (e.g. ``"yolov7-eval"``) needs."""
    try:
        ckpt = classify(read_object(path), str(path))
    except CheckpointError:
        raise
    except ValueError as e:
        msg = str(e)
        raise CheckpointError(msg if str(path) in msg else f"{path}: {msg}") from None
    if ckpt.kind not in kinds:
        wanted = " or ".join(DESCRIBE[k] for k in kinds)
        raise CheckpointError(f"{path}: is a {ckpt.description}; {purpose or 'this'} needs a {wanted}")
    if ckpt.kind == "official" and ckpt.spec is None:
        from .official_weights import identify_variant

        variant = identify_variant(ckpt.official)
        if variant is not None:
            ckpt.spec = {"variant": variant, "num_classes": ckpt.official.num_classes, "aux_head": False}
    return ckpt


# ---- loading --------------------------------------------------------------------------------------
@dataclass
class LoadCounts:
    """What :func:`load_weights` did (our keys). ``share``: the loaded fraction of the model's values."""

    path: str
    kind: str
    loaded: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # "key: file (shape) vs model (shape)"
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    share: float = 0.0

    def line(self) -> str:
        return (f"{self.path} ({DESCRIBE[self.kind]}): {len(self.loaded)} tensors loaded, {len(self.mismatched)} "
                f"shape-mismatched, {len(self.missing)} missing, {len(self.unexpected)} unexpected "
                f"({self.share:.1%} of the model's values)")


def _head_key(key: str) -> bool:
    return key.startswith(("detect.m.", "detect.m2.", "detect.ia.", "detect.im."))


def _our_state(model: YOLOv7, ckpt: CheckpointFile) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """(file tensors under our keys, unexpected file keys, our keys reset rather than loaded)."""
    if ckpt.kind == "deploy":
        raise CheckpointError(f"{ckpt.path}: is a deploy file (fused tensors); weights can only be loaded from a "
                              "training checkpoint, an official .pt or a state dict")
    if ckpt.kind != "official":
        return ckpt.state, [], []
    from .official_keys import key_map

    kmap = key_map(model, ckpt.official.form)
    state = {kmap[k]: v for k, v in ckpt.official.state_dict.items() if k in kmap}
    unexpected = [k for k in ckpt.official.state_dict if k not in kmap]
    reset = [k for k in model.state_dict() if ckpt.official.form == "deploy" and k.startswith(("detect.ia.", "detect.im."))]
    return state, unexpected, reset


@torch.no_grad()
def load_weights(model: YOLOv7, ckpt: CheckpointFile | str | os.PathLike, allow_partial: bool = False) -> LoadCounts:
    """Copy the tensors of ``ckpt`` whose key and shape match into ``model`` (training form).

    A head built for another class count is the expected partial case: everything else is loaded,
    the head keeps its initialisation, and the log says so. Raises :class:`CheckpointError` (model
    untouched) when the load would cover less than :data:`MIN_LOADED` of the model's values and
    ``allow_partial`` is false.
    """
    if not isinstance(ckpt, CheckpointFile):
        ckpt = read_checkpoint(ckpt)
    state, unexpected, reset = _our_state(model, ckpt)
    ours = model.state_dict()
    counts = LoadCounts(ckpt.path, ckpt.kind, unexpected=list(unexpected) + [k for k in state if k not in ours])
    for k, v in state.items():
        if k not in ours:
            continue
        if tuple(v.shape) != tuple(ours[k].shape):
            counts.mismatched.append(f"{k}: file {tuple(v.shape)} vs model {tuple(ours[k].shape)}")
        else:
            counts.loaded.append(k)
    done = set(counts.loaded) | {m.split(":", 1)[0] for m in counts.mismatched} | set(reset)
    counts.missing = [k for k in ours if k not in done]
    total = sum(t.numel() for t in ours.values()) or 1
    counts.share = sum(ours[k].numel() for k in counts.loaded + reset) / total
    head_only = counts.mismatched and all(_head_key(m) for m in counts.mismatched)
    if counts.share < MIN_LOADED and not allow_partial:
        hint = ""
        if ckpt.spec and ckpt.spec.get("variant") not in (None, model.arch.name):
            hint = f"; the file is {ckpt.spec['variant']}, the model {model.arch.name}"
        example = (counts.mismatched or counts.missing or counts.unexpected or [""])[0]
        raise CheckpointError(f"{counts.line()}: matches less than {MIN_LOADED:.0%} of model {model.arch.name}"
                              f"{hint} (e.g. {example}); set model.weights_partial=true if a partial load is intended")
    for k in counts.loaded:
        ours[k].copy_(state[k].to(dtype=ours[k].dtype))
    for k in reset:
        ours[k].fill_(0.0 if k.startswith("detect.ia.") else 1.0)
    if head_only and not counts.missing:
        log.warning("%s; the detection head (built for %d classes) keeps its initialisation: %s", counts.line(),
                    model.num_classes, counts.mismatched[0])
    elif counts.mismatched or counts.missing or counts.unexpected:
        log.warning("%s; e.g. %s", counts.line(), (counts.mismatched or counts.missing or counts.unexpected)[:3])
    else:
        log.info(counts.line())
    return counts


def build_from(ckpt: CheckpointFile) -> YOLOv7:
    """The network of a file that says what it is (training, deploy, identified official), in eval mode,
    its tensors loaded strictly (deploy: the deploy form)."""
    if ckpt.spec is None:
        what = "an official checkpoint that matches no known variant" if ckpt.kind == "official" else \
            "a plain state dict (no model spec)"
        raise CheckpointError(f"{ckpt.path}: is {what}; start a run from it with model.weights=<file> and "
                              "model=<variant> instead")
    model = build_model(to_spec(ModelSpec, ckpt.spec, "model"))
    if ckpt.kind == "deploy":
        from .fuse import to_deploy

        model = to_deploy(model)
        try:
            model.load_state_dict(ckpt.state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"{ckpt.path}: deploy tensors do not fit its own spec {ckpt.spec} "
                                  f"({str(e).splitlines()[0][:160]})") from None
        return model.eval()
    if ckpt.kind == "official":
        from .official_weights import load_official_weights

        load_official_weights(model, ckpt.official)
        return model.eval()
    counts = load_weights(model, ckpt)
    if counts.mismatched or counts.missing:
        raise CheckpointError(f"{counts.line()}: the file does not fit its own spec {ckpt.spec}")
    return model.eval()
