"""``build_model``: the one entry point from a :class:`ModelSpec` (``model`` + ``scaling`` groups) to a network."""

from __future__ import annotations

from typing import Any

from ..specs import to_spec
from .arch import get_arch
from .scaling import scale_arch
from .spec import ModelSpec
from .yolo import YOLOv7


def build_model(spec: ModelSpec | str, **fields: Any) -> YOLOv7:
    """The network of ``spec``. A variant name with :class:`ModelSpec` fields is short for the spec:
    ``build_model("yolov7-tiny", num_classes=3)`` (``scaling`` may be a dict); an unknown field is an error."""
    if isinstance(spec, str):
        spec = to_spec(ModelSpec, {"variant": spec, **fields}, "model")
    elif fields:
        raise TypeError(f"build_model takes a ModelSpec or a variant name with fields, not both ({sorted(fields)})")
    s = spec.scaling
    arch = scale_arch(get_arch(spec.variant), s.mode, float(s.width), float(s.depth))
    return YOLOv7(arch, spec)
