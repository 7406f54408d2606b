"""Model scaling: width, depth, and the paper's compound scaling for concatenation-based models.

* ``width``: every channel count x ``width`` (rounded to a multiple of 8).
* ``depth``: the number of 3x3 convs of every ELAN computational block x ``depth`` (rounded to a
  whole number of blocks). Nothing else changes, so each transition now sees more input channels.
* ``compound``: depth as above, then every transition layer's width is multiplied by the change of
  its block's output (concatenation) channels, and so is the transition that follows the block.
  This keeps every transition's in/out channel ratio of the base model (paper, section 3.2).
"""

from __future__ import annotations

import dataclasses
import math

from ..nn.elan import ELANSpec
from .arch import Arch
from ..errors import ConfigError

SCALING_MODES = ("none", "width", "depth", "compound")


def make_divisible(x: float, divisor: int = 8) -> int:
    return max(divisor, int(math.ceil(x / divisor) * divisor))


def _w(c, f: float):
    return None if c is None else make_divisible(c * f)


def _deepen(spec: ELANSpec, depth: float) -> ELANSpec:
    blocks = max(1, round(spec.n * depth / spec.block))
    return dataclasses.replace(spec, n=blocks * spec.block)


def _widen(spec: ELANSpec, f: float) -> ELANSpec:
    return ELANSpec(_w(spec.c, f), _w(spec.c3, f), spec.n, spec.block, _w(spec.c2, f))


def scale_arch(arch: Arch, mode: str = "none", width: float = 1.0, depth: float = 1.0) -> Arch:
    """The scaled variant table. ``mode`` picks which of ``width`` / ``depth`` apply."""
    if mode not in SCALING_MODES:
        raise ConfigError(f"unknown scaling {mode!r}; valid: {', '.join(SCALING_MODES)}")
    if width <= 0 or depth <= 0:
        raise ConfigError(f"scaling factors must be > 0 (width={width}, depth={depth})")
    if mode == "none":
        return arch
    if mode == "width":
        return dataclasses.replace(
            arch, name=f"{arch.name}-w{width:g}",
            stem=tuple(s if s == "reorg" else (_w(s[0], width), *s[1:]) for s in arch.stem),
            stages=tuple((_w(d, width), _widen(e, width)) for d, e in arch.stages),
            spp=(arch.spp[0], _w(arch.spp[1], width)),
            top_down=tuple((_w(d, width), _widen(e, width)) for d, e in arch.top_down),
            bottom_up=tuple((_w(d, width), _widen(e, width)) for d, e in arch.bottom_up),
            lead=(arch.lead[0], tuple(_w(c, width) for c in arch.lead[1])),
            aux=tuple(_w(c, width) for c in arch.aux),
        )
    deep = {k: tuple((d, _deepen(e, depth)) for d, e in getattr(arch, k)) for k in ("stages", "top_down", "bottom_up")}
    if mode == "depth":
        return dataclasses.replace(arch, name=f"{arch.name}-d{depth:g}", **deep)

    ratios: list[float] = []

    def compound(pairs_base, pairs_deep, prev_ratio: float):
        out = []
        for (d, base), (_, e) in zip(pairs_base, pairs_deep):
            ratio = e.concat_channels() / base.concat_channels()
            out.append((_w(d, prev_ratio), dataclasses.replace(e, c2=make_divisible(base.c2 * ratio))))
            prev_ratio = ratio
        ratios.append(prev_ratio)
        return tuple(out)

    stages = compound(arch.stages, deep["stages"], 1.0)
    top_down = compound(arch.top_down, deep["top_down"], 1.0)
    bottom_up = compound(arch.bottom_up, deep["bottom_up"], ratios[-1])
    return dataclasses.replace(arch, name=f"{arch.name}-c{depth:g}", stages=stages, top_down=top_down,
                               bottom_up=bottom_up)
