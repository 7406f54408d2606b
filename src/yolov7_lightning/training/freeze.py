"""``freeze``: fine-tune with part of the network fixed (official ``--freeze``).

``freeze`` is ``null``/``0`` (nothing), ``N`` (the first N layers of the official layer list,
``model.0`` .. ``model.N-1``; the official help gives 50 for the yolov7 backbone), a module name of
this project (``backbone``, ``neck``, ``neck.spp``, ``lead_convs``, ``detect`` ...), or a list of
those. Frozen parameters get ``requires_grad=False`` and stay out of the optimizer groups; the
BatchNorm layers inside frozen modules stay in eval mode, so their running statistics do not move
either (the official code freezes only the parameters).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from ..errors import ConfigError


def frozen_modules(model: nn.Module, spec) -> list[nn.Module]:
    """The modules ``spec`` names in ``model`` (a :class:`~yolov7_lightning.models.YOLOv7`)."""
    if spec is None or spec is False or (isinstance(spec, int) and spec == 0):
        return []
    items = list(spec) if isinstance(spec, Sequence) and not isinstance(spec, str) else [spec]
    out: list[nn.Module] = []
    for item in items:
        if isinstance(item, bool):
            raise ConfigError(f"freeze: {item!r} is neither a layer count nor a module name")
        if isinstance(item, int):
            from ..models.official_keys import official_layers

            layers = official_layers(model)
            if not 0 <= item <= len(layers):
                raise ConfigError(f"freeze: {item} layers asked, {model.arch.name} has {len(layers)} official layers")
            out += [m for m in layers[:item] if m is not None]
            continue
        try:
            out.append(model.get_submodule(str(item)))
        except AttributeError:
            names = ", ".join(n for n, _ in model.named_children())
            raise ConfigError(f"freeze: {item!r} is not a module of {model.arch.name}; top-level parts: {names} "
                              "(or a number of official layers)") from None
    return out


def apply_freeze(model: nn.Module, spec) -> list[nn.Module]:
    """Set ``requires_grad=False`` on the parameters of the modules ``spec`` names; returns them."""
    modules = frozen_modules(model, spec)
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)
    return modules


def freeze_batchnorm(modules: list[nn.Module]) -> None:
    """Put every BatchNorm inside ``modules`` in eval mode (its running statistics stay as they are)."""
    for m in modules:
        for bn in m.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                bn.eval()
