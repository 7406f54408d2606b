"""The one checkpoint reader behind every entry point (``ckpt_path``, ``model.weights``, eval,
predict, export), and the one way weights are loaded into a model. Lightning-free.

The stack, bottom up (no module imports one above it): :mod:`.safe_unpickle` (``weights_only``
unpickling, official classes as inert stand-ins), :mod:`.official_weights` (the official ``.pt``
format), :mod:`.checkpoint_upgrades` (every upgrade of an older file, by format number), this module.

:func:`read_checkpoint` reads any supported file into one :class:`CheckpointFile` and refuses
anything else with a one-line :class:`CheckpointError` naming the file and what is wrong with it:

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
damaged file is refused, naming the record. Every file is read with ``torch.load(weights_only=True)``
(the official class names allow-listed as inert stand-ins): a pickle that would run code is refused
for safety, never loaded. A training checkpoint or deploy file of an older format is upgraded
(:func:`~.checkpoint_upgrades.upgrade`). :func:`load_weights` copies a file's tensors into a model
and returns a :class:`LoadReport` (loaded / shape-mismatched / missing / unexpected, implicit values
reset); a load that covers less than :data:`MIN_LOADED` of the model's values is an error unless
``allow_partial``. :func:`load_official_weights` is the strict load of an official file (every tensor
of its config, or an error naming both variants).
"""

from __future__ import annotations

import copy
import logging
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..specs import to_spec
from .checkpoint_upgrades import FORMAT_KEY, format_of, upgrade, upgrade_model
from .factory import build_model
from .fuse import to_deploy
from .official_keys import key_map
from .official_weights import (
    OfficialCheckpoint,
    explain_mismatch,
    identify_variant,
    official_from_stand_ins,
    official_from_state,
    our_state,
    read_official_checkpoint,
    reset_implicit,
)
from .safe_unpickle import UnsafeCheckpointError, load_restricted, unreadable_reason
from .spec import ModelSpec
from .yolo import YOLOv7

__all__ = ["CheckpointError", "CheckpointFile", "DEPLOY_FORMAT", "KINDS", "LoadReport", "MIN_LOADED", "build_from",
           "classify", "default_names", "default_size", "load_official_weights", "load_weights", "read_checkpoint",
           "read_object", "recorded_spec", "verify_archive"]

log = logging.getLogger(__name__)

DEPLOY_FORMAT = "yolov7-lightning-deploy"
KINDS = ("training", "deploy", "official", "state_dict")
DESCRIBE = {"training": "training checkpoint", "deploy": "deploy file", "official": "official YOLOv7 checkpoint",
            "state_dict": "plain state dict"}
MIN_LOADED = 0.5  # share of the model's values a load must cover unless a partial load is intended
_OFFICIAL_KEY = re.compile(r"^model\.\d+\.")


def recorded_spec(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`ModelSpec` fields of a ``model`` config or hyper-parameters as a plain dict, the
    way files record them: the fields given (one unset or None takes the spec's default), without the
    keys of older files (:func:`~.checkpoint_upgrades.upgrade_model`: ``_target_``, ``weights``). Any
    other key that is not a field is an error naming it (:func:`~yolov7_lightning.specs.to_spec`)."""
    spec = {k: copy.deepcopy(v) for k, v in upgrade_model(model_cfg).items() if v is not None}
    if "variant" not in spec:
        raise ValueError(f"model config has no 'variant': {dict(model_cfg)}")
    to_spec(ModelSpec, spec, "model")
    return spec


def default_names(num_classes: int) -> list[str]:
    return [f"class{i}" for i in range(num_classes)]


def default_size(model: YOLOv7) -> int:
    return 1280 if model.max_stride == 64 else 640


@dataclass
class CheckpointFile:
    """What :func:`read_checkpoint` found. ``state``: tensors under this project's keys (``training``:
    the EMA ``state_dict`` without the ``model.`` prefix; ``deploy``: the fused form; ``official``:
    empty, see ``official``). ``spec``: the :class:`ModelSpec` fields it records (:func:`recorded_spec`;
    None for a plain state dict; for an official file the identified variant, or None). ``raw``: the
    whole object that was read (a training checkpoint or deploy file: upgraded to the current format)."""

    path: str
    kind: str
    state: dict[str, torch.Tensor]
    spec: dict[str, Any] | None = None
    names: list[str] | None = None
    image_size: int | None = None
    hparams: dict[str, Any] | None = None
    official: OfficialCheckpoint | None = None
    raw: Any = None

    @property
    def description(self) -> str:
        return DESCRIBE[self.kind]


# ---- reading --------------------------------------------------------------------------------------
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
    """Identify an object read from ``path`` (see the module docstring), upgrading a training checkpoint
    or deploy file of an older format, or raise :class:`CheckpointError`."""
    if isinstance(obj, dict) and FORMAT_KEY in obj:
        format_of(obj, path)  # a newer format than this code reads: refused, whatever its layout
    if isinstance(obj, dict) and obj.get("format") == DEPLOY_FORMAT:
        obj = upgrade(obj, "deploy", path)
        state = _tensors(obj.get("state_dict"))
        if state is None or not isinstance(obj.get("model"), Mapping):
            raise CheckpointError(f"{path}: deploy file without 'model' spec or tensors in 'state_dict'")
        return CheckpointFile(path, "deploy", state, recorded_spec(obj["model"]), list(obj.get("names") or []) or None,
                              int(obj.get("image_size") or 0) or None, raw=obj)
    if isinstance(obj, dict) and "hyper_parameters" in obj and "state_dict" in obj:
        hp = obj["hyper_parameters"]
        sd = obj["state_dict"] if isinstance(obj["state_dict"], Mapping) else {}
        state = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.") and isinstance(v, torch.Tensor)}
        if not isinstance(hp, Mapping) or not isinstance(hp.get("model"), Mapping) or not state:
            raise CheckpointError(f"{path}: a Lightning checkpoint, but not of this project (no 'model' "
                                  "hyper-parameters or no 'model.*' tensors)")
        obj = upgrade(obj, "training", path)
        hp = obj["hyper_parameters"]
        return CheckpointFile(path, "training", state, recorded_spec(hp["model"]), list(hp.get("names") or []) or None,
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
        variant = identify_variant(ckpt.official)
        if variant is not None:
            ckpt.spec = {"variant": variant, "num_classes": ckpt.official.num_classes, "aux_head": False}
    return ckpt


# ---- loading --------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What a load did (our keys, except ``unexpected``: the file's own keys). ``implicit_reset``: the
    implicit tensors set to the identity for a deploy-form official file; ``share``: the fraction of
    the model's values loaded or reset."""

    path: str
    kind: str
    form: str | None = None  # an official file's form: training | deploy
    loaded: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # "key: file (shape) vs model (shape)"
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    implicit_reset: list[str] = field(default_factory=list)
    share: float = 0.0

    def line(self) -> str:
        return (f"{self.path} ({DESCRIBE[self.kind]}): {len(self.loaded)} tensors loaded, {len(self.mismatched)} "
                f"shape-mismatched, {len(self.missing)} missing, {len(self.unexpected)} unexpected "
                f"({self.share:.1%} of the model's values)")


def _head_key(key: str) -> bool:
    return key.startswith(("detect.m.", "detect.m2.", "detect.ia.", "detect.im."))


def _plan(model: YOLOv7, ckpt: CheckpointFile) -> tuple[LoadReport, dict[str, torch.Tensor]]:
    """What loading ``ckpt`` into ``model`` would do (nothing is copied), and the file's tensors under our keys."""
    if ckpt.kind == "deploy":
        raise CheckpointError(f"{ckpt.path}: is a deploy file (fused tensors); weights can only be loaded from a "
                              "training checkpoint, an official .pt or a state dict")
    if ckpt.kind == "official":
        state, unexpected, reset = our_state(model, ckpt.official)
    else:
        state, unexpected, reset = ckpt.state, [], []
    ours = model.state_dict()
    report = LoadReport(ckpt.path, ckpt.kind, ckpt.official.form if ckpt.official is not None else None,
                        unexpected=list(unexpected) + [k for k in state if k not in ours], implicit_reset=list(reset))
    for k, v in state.items():
        if k not in ours:
            continue
        if tuple(v.shape) != tuple(ours[k].shape):
            report.mismatched.append(f"{k}: file {tuple(v.shape)} vs model {tuple(ours[k].shape)}")
        else:
            report.loaded.append(k)
    done = set(report.loaded) | {m.split(":", 1)[0] for m in report.mismatched} | set(reset)
    report.missing = [k for k in ours if k not in done]
    total = sum(t.numel() for t in ours.values()) or 1
    report.share = sum(ours[k].numel() for k in report.loaded + report.implicit_reset) / total
    return report, state


@torch.no_grad()
def _apply(model: YOLOv7, report: LoadReport, state: dict[str, torch.Tensor]) -> None:
    """Copy the tensors ``report`` loads and reset its implicit tensors."""
    ours = model.state_dict()
    for k in report.loaded:
        ours[k].copy_(state[k].to(dtype=ours[k].dtype, device=ours[k].device))
    reset_implicit(ours, report.implicit_reset)


def load_weights(model: YOLOv7, ckpt: CheckpointFile | str | os.PathLike, allow_partial: bool = False) -> LoadReport:
    """Copy the tensors of ``ckpt`` whose key and shape match into ``model`` (training form).

    A head built for another class count is the expected partial case: everything else is loaded,
    the head keeps its initialisation, and the log says so. Raises :class:`CheckpointError` (model
    untouched) when the load would cover less than :data:`MIN_LOADED` of the model's values and
    ``allow_partial`` is false.
    """
    if not isinstance(ckpt, CheckpointFile):
        ckpt = read_checkpoint(ckpt)
    report, state = _plan(model, ckpt)
    head_only = report.mismatched and all(_head_key(m) for m in report.mismatched)
    if report.share < MIN_LOADED and not allow_partial:
        hint = ""
        if ckpt.spec and ckpt.spec.get("variant") not in (None, model.arch.name):
            hint = f"; the file is {ckpt.spec['variant']}, the model {model.arch.name}"
        example = (report.mismatched or report.missing or report.unexpected or [""])[0]
        raise CheckpointError(f"{report.line()}: matches less than {MIN_LOADED:.0%} of model {model.arch.name}"
                              f"{hint} (e.g. {example}); set model.weights_partial=true if a partial load is intended")
    _apply(model, report, state)
    if head_only and not report.missing:
        log.warning("%s; the detection head (built for %d classes) keeps its initialisation: %s", report.line(),
                    model.num_classes, report.mismatched[0])
    elif report.mismatched or report.missing or report.unexpected:
        log.warning("%s; e.g. %s", report.line(), (report.mismatched or report.missing or report.unexpected)[:3])
    else:
        log.info(report.line())
    return report


def load_official_weights(model: YOLOv7, source: str | os.PathLike | OfficialCheckpoint) -> LoadReport:
    """Copy an official checkpoint (path or :class:`OfficialCheckpoint`) into ``model`` (training form).

    Every tensor of the official config must be present with our shape, anchors included (they
    come from the checkpoint). A deploy-form checkpoint has the implicit tensors folded into the
    head convs, so ``detect.ia`` is set to 0 and ``detect.im`` to 1 (exact). Raises ValueError for
    another variant, another class count or other shapes (model untouched).
    """
    official = source if isinstance(source, OfficialCheckpoint) else read_official_checkpoint(source)
    ours = model.state_dict()
    expected = {ok: tuple(ours[k].shape) for ok, k in key_map(model, official.form).items()}
    got = official.state_dict
    extra = [k for k in got if k not in expected]
    aux_dropped = model.arch.aux_default and not model.aux_head
    if (official.num_classes != model.num_classes or any(k not in got or tuple(got[k].shape) != s
                                                         for k, s in expected.items()) or (extra and not aux_dropped)):
        raise explain_mismatch(model, official, expected)
    report, state = _plan(model, CheckpointFile(official.path, "official", {}, official=official))
    _apply(model, report, state)
    return report


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
        model = to_deploy(model)
        try:
            model.load_state_dict(ckpt.state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"{ckpt.path}: deploy tensors do not fit its own spec {ckpt.spec} "
                                  f"({str(e).splitlines()[0][:160]})") from None
        return model.eval()
    if ckpt.kind == "official":
        load_official_weights(model, ckpt.official)
        return model.eval()
    report = load_weights(model, ckpt)
    if report.mismatched or report.missing:
        raise CheckpointError(f"{report.line()}: the file does not fit its own spec {ckpt.spec}")
    return model.eval()
