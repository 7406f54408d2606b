"""``build_model``: the one entry point from config (``model`` + ``scaling`` groups) to a network."""

from __future__ import annotations

from typing import Any

from .arch import get_arch
from .scaling import scale_arch
from .yolo import YOLOv7


def build_model(variant: str = "yolov7", num_classes: int = 80, aux_head: bool | None = None,
                repconv: str = "planned", eelan_form: str = "branches", aux_tap: str = "branch",
                scaling: dict[str, Any] | None = None, elan_repconv: str = "none", **_: Any) -> YOLOv7:
    """Build a variant by name. ``scaling`` is ``{mode, width, depth}`` (the ``scaling`` group);
    ``aux_head=None`` takes the official default (on for the P6 models, off for P5). Other keys of
    the ``model`` group (``weights``: loaded by the training command) are ignored here.
    ``elan_repconv``: ``none`` (official) | ``planned`` | ``identity``, see :class:`YOLOv7`."""
    scaling = dict(scaling or {})
    arch = scale_arch(get_arch(variant), scaling.get("mode", "none"), float(scaling.get("width", 1.0)),
                      float(scaling.get("depth", 1.0)))
    return YOLOv7(arch, num_classes=num_classes, aux_head=aux_head, repconv=repconv, eelan_form=eelan_form,
                  aux_tap=aux_tap, elan_repconv=elan_repconv)
