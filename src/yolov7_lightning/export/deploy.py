"""The deploy checkpoint, and reading any model source an export starts from.

A deploy checkpoint is a ``torch.save`` of a plain dict (loadable with ``weights_only=True``)::

    {"format": "yolov7-lightning-deploy", "yolov7_format": 1, "version": 1,
     "model": {ModelSpec fields: variant, num_classes, aux_head, repconv, eelan_form, aux_tap, elan_repconv,
               scaling},
     "names": [class names], "image_size": int, "state_dict": {fused tensors}}

:func:`load_deploy` rebuilds the network from that :class:`~yolov7_lightning.models.ModelSpec`
(``build_model``; fields left out take the spec's defaults), turns it into the deploy form
(:func:`~yolov7_lightning.models.fuse.to_deploy`, which fixes the module structure) and loads the
fused tensors strictly. ``yolov7_format`` is the format number of the files this project writes
(``models/checkpoint_upgrades.py``, which upgrades older files); ``version`` repeats it for the readers
written before that number.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_torch_save
from ..models import YOLOv7
from ..models.checkpoint_reader import (
    DEPLOY_FORMAT,
    build_from,
    default_names,
    default_size,
    read_checkpoint,
    recorded_spec,
)
from ..models.checkpoint_upgrades import FORMAT, FORMAT_KEY
from ..models.fuse import to_deploy

__all__ = ["DEPLOY_FORMAT", "ExportSource", "default_names", "load_deploy", "load_source", "recorded_spec",
           "save_deploy", "source_from_model"]


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


def save_deploy(source: ExportSource, path: str | Path, deploy: YOLOv7 | None = None) -> Path:
    """Write the deploy checkpoint of ``source`` (``deploy``: its deploy form, if already computed)."""
    deploy = deploy if deploy is not None else source.deploy_model()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in deploy.state_dict().items()}
    payload = {"format": DEPLOY_FORMAT, FORMAT_KEY: FORMAT, "version": FORMAT, "model": dict(source.spec),
               "names": list(source.names), "image_size": int(source.image_size), "state_dict": state}
    return atomic_torch_save(payload, path)


def load_deploy(path: str | Path) -> YOLOv7:
    """The deploy-form network of a deploy checkpoint, in eval mode (``load_source`` gives names too)."""
    return load_source(path).model


def load_source(path: str | Path) -> ExportSource:
    """Read a training checkpoint of this project (EMA weights), a deploy checkpoint or an official
    YOLOv7 ``.pt`` (variant identified, class count from the checkpoint) through the checkpoint reader."""
    ckpt = read_checkpoint(path, kinds=("training", "deploy", "official"), purpose="export")
    model = build_from(ckpt)
    return ExportSource(model, dict(ckpt.spec), list(ckpt.names or default_names(model.num_classes)),
                        int(ckpt.image_size or default_size(model)), ckpt.kind, str(path))


def source_from_model(model: YOLOv7, spec: Mapping[str, Any] | None = None, names: list[str] | None = None,
                      image_size: int | None = None) -> ExportSource:
    """An :class:`ExportSource` from a live network (a CPU copy in eval mode; ``model`` is untouched)."""
    copy_ = copy.deepcopy(model).cpu().eval()
    spec = recorded_spec(spec) if spec is not None else {"variant": model.arch.name, "num_classes": model.num_classes}
    return ExportSource(copy_, spec, list(names or default_names(model.num_classes)),
                        int(image_size or default_size(model)), "deploy" if model.deploy else "training")
