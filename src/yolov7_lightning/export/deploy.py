"""The deploy checkpoint, and reading any model source an export starts from.

A deploy checkpoint is a ``torch.save`` of a plain dict (loadable with ``weights_only=True``)::

    {"format": "yolov7-lightning-deploy", "version": 1,
     "model": {build_model kwargs: variant, num_classes, aux_head, repconv, eelan_form, aux_tap, elan_repconv,
               scaling},
     "names": [class names], "image_size": int, "state_dict": {fused tensors}}

:func:`load_deploy` rebuilds the network with ``build_model(**model)``, turns it into the deploy form
(:func:`~yolov7_lightning.models.fuse.to_deploy`, which fixes the module structure) and loads the
fused tensors strictly.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_torch_save
from ..models import YOLOv7, build_model
from ..models.fuse import to_deploy

DEPLOY_FORMAT = "yolov7-lightning-deploy"
DEPLOY_VERSION = 1
_BUILD_KEYS = ("variant", "num_classes", "aux_head", "repconv", "eelan_form", "aux_tap", "elan_repconv", "scaling")


def model_spec(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``build_model`` kwargs from a ``model`` config (``_target_``/``weights`` dropped, plain containers)."""
    try:
        from omegaconf import DictConfig, OmegaConf
        if isinstance(model_cfg, DictConfig):
            model_cfg = OmegaConf.to_container(model_cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    spec = {k: copy.deepcopy(model_cfg[k]) for k in _BUILD_KEYS if k in model_cfg and model_cfg[k] is not None}
    if "scaling" in spec:
        spec["scaling"] = {k: v for k, v in dict(spec["scaling"]).items() if not str(k).startswith("_")}
    if "variant" not in spec:
        raise ValueError(f"model config has no 'variant': {dict(model_cfg)}")
    return spec


@dataclass
class ExportSource:
    """A model to export. ``model`` is in eval mode, on the CPU: the training (unfused) form when the
    source has one (``kind`` ``training`` or ``official``), else the deploy form (``kind`` ``deploy``)."""

    model: YOLOv7
    spec: dict[str, Any]
    names: list[str]
    image_size: int
    kind: str
    path: str | None = None

    @property
    def fused(self) -> bool:
        return bool(self.model.deploy)

    def deploy_model(self) -> YOLOv7:
        """The deploy form (a copy; the source model is left as it is)."""
        return copy.deepcopy(self.model).eval() if self.fused else to_deploy(self.model)


def default_names(num_classes: int) -> list[str]:
    return [f"class{i}" for i in range(num_classes)]


def save_deploy(source: ExportSource, path: str | Path, deploy: YOLOv7 | None = None) -> Path:
    """Write the deploy checkpoint of ``source`` (``deploy``: its deploy form, if already computed)."""
    deploy = deploy if deploy is not None else source.deploy_model()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in deploy.state_dict().items()}
    payload = {"format": DEPLOY_FORMAT, "version": DEPLOY_VERSION, "model": dict(source.spec),
               "names": list(source.names), "image_size": int(source.image_size), "state_dict": state}
    return atomic_torch_save(payload, path)


def is_deploy_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == DEPLOY_FORMAT


def _from_deploy_dict(ckpt: dict, path: str | None) -> ExportSource:
    if ckpt.get("version", 0) > DEPLOY_VERSION:
        raise ValueError(f"{path}: deploy checkpoint version {ckpt['version']} is newer than this code "
                         f"({DEPLOY_VERSION})")
    spec = dict(ckpt["model"])
    model = to_deploy(build_model(**spec))
    model.load_state_dict(ckpt["state_dict"], strict=True)
    names = list(ckpt.get("names") or default_names(model.num_classes))
    return ExportSource(model.eval(), spec, names, int(ckpt.get("image_size") or 640), "deploy", path)


def load_deploy(path: str | Path) -> YOLOv7:
    """The deploy-form network of a deploy checkpoint, in eval mode (``load_source`` gives names too)."""
    return load_source(path).model


def _default_size(model: YOLOv7) -> int:
    return 1280 if model.max_stride == 64 else 640


def load_source(path: str | Path) -> ExportSource:
    """Read a training checkpoint of this project (EMA weights), a deploy checkpoint or an official
    YOLOv7 ``.pt`` (variant from :func:`identify_variant`, class count from the checkpoint)."""
    from ..models.official_weights import identify_variant, load_official_weights, read_official_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError):  # official .pt files pickle whole modules: the restricted reader handles them
        ckpt = None
    if is_deploy_checkpoint(ckpt):
        return _from_deploy_dict(ckpt, str(path))
    if isinstance(ckpt, dict) and "hyper_parameters" in ckpt and "state_dict" in ckpt:
        from ..training.checkpoint import load_module
        module = load_module(path)
        hp = module.hparams
        model = module.model.cpu().eval()
        return ExportSource(model, model_spec(hp["model"]), list(hp.get("names") or default_names(model.num_classes)),
                            int(hp.get("image_size") or _default_size(model)), "training", str(path))
    official = read_official_checkpoint(path)
    variant = identify_variant(official)
    if variant is None:
        raise ValueError(f"{path}: an official-format checkpoint ({official.form} form, {official.num_classes} "
                         "classes) that matches no known variant")
    spec = {"variant": variant, "num_classes": official.num_classes, "aux_head": False}
    model = build_model(**spec)
    load_official_weights(model, official)
    return ExportSource(model.eval(), spec, default_names(official.num_classes), _default_size(model), "official",
                        str(path))


def source_from_model(model: YOLOv7, spec: Mapping[str, Any] | None = None, names: list[str] | None = None,
                      image_size: int | None = None) -> ExportSource:
    """An :class:`ExportSource` from a live network (a CPU copy in eval mode; ``model`` is untouched)."""
    copy_ = copy.deepcopy(model).cpu().eval()
    spec = model_spec(spec) if spec is not None else {"variant": model.arch.name, "num_classes": model.num_classes}
    return ExportSource(copy_, spec, list(names or default_names(model.num_classes)),
                        int(image_size or _default_size(model)), "deploy" if model.deploy else "training")
