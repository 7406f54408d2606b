"""Detection heads: IDetect (lead, implicit knowledge) with an optional auxiliary head (IAuxDetect).

State-dict names follow the official heads: ``anchors`` (grid units), ``anchor_grid`` (pixels),
``m.<i>`` lead 1x1 convs, ``ia.<i>``/``im.<i>`` implicit tensors, ``m2.<i>`` aux 1x1 convs. The
anchors, strides and box decoder are ``IDetect.geometry`` (:class:`~.head_geometry.HeadGeometry`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..nn.implicit import ImplicitA, ImplicitM
from .head_geometry import HeadGeometry


class HeadOutputs(NamedTuple):
    """Raw head maps, one ``[B, A, H, W, 5 + nc]`` tensor per level; ``aux`` is None without aux head."""

    lead: list[torch.Tensor]
    aux: list[torch.Tensor] | None


class IDetect(nn.Module):
    """Per level ``im(conv1x1(ia(x)))`` -> ``[B, A, H, W, 5 + nc]``; with ``aux_channels`` also the
    plain aux convs ``m2`` (IAuxDetect). ``fuse()`` folds ``ia``/``im`` into ``m`` and drops them."""

    def __init__(self, nc: int, anchors: tuple, strides: tuple[int, ...], channels: tuple[int, ...],
                 aux_channels: tuple[int, ...] | None = None):
        super().__init__()
        if nc < 1:
            raise ValueError(f"num_classes must be >= 1 (got {nc})")
        self.nc, self.no, self.nl = nc, nc + 5, len(anchors)
        self.na = len(anchors[0]) // 2
        self.strides = tuple(strides)
        a = torch.tensor(anchors, dtype=torch.float32).view(self.nl, self.na, 2)
        stride = torch.tensor(strides, dtype=torch.float32).view(-1, 1, 1)
        self.register_buffer("anchors", a / stride)  # grid units (used by the loss)
        self.register_buffer("anchor_grid", a.clone().view(self.nl, 1, self.na, 1, 1, 2))  # pixels
        self.m = nn.ModuleList(nn.Conv2d(c, self.na * self.no, 1) for c in channels)
        self.ia = nn.ModuleList(ImplicitA(c) for c in channels)
        self.im = nn.ModuleList(ImplicitM(self.na * self.no) for _ in channels)
        self.m2 = nn.ModuleList(nn.Conv2d(c, self.na * self.no, 1) for c in aux_channels) if aux_channels else None
        self.fused = False
        self._init_biases()

    @torch.no_grad()
    def _init_biases(self) -> None:
        """Official prior: objectness 8 objects per 640x640 image, class probability ~0.6/nc."""
        for convs in (self.m, self.m2 or []):
            for conv, s in zip(convs, self.strides):
                b = conv.bias.view(self.na, self.no)
                b[:, 4] += math.log(8 / (640 / s) ** 2)
                b[:, 5:] += math.log(0.6 / (self.nc - 0.99))

    def _shape(self, y: torch.Tensor) -> torch.Tensor:
        b, _, h, w = y.shape
        return y.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).contiguous()

    def forward(self, lead: list[torch.Tensor], aux: list[torch.Tensor] | None = None) -> HeadOutputs:
        if self.fused:
            out = [self._shape(conv(x)) for conv, x in zip(self.m, lead)]
        else:
            out = [self._shape(im(conv(ia(x)))) for conv, ia, im, x in zip(self.m, self.ia, self.im, lead)]
        aux_out = None
        if aux is not None and self.m2 is not None:
            aux_out = [self._shape(conv(x)) for conv, x in zip(self.m2, aux)]
        return HeadOutputs(out, aux_out)

    @property
    def geometry(self) -> HeadGeometry:
        """Strides, anchors (read from this head's buffers at every use) and the box decoder."""
        return HeadGeometry(self)

    def decode(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Raw maps -> ``[B, N, 5 + nc]``: cx, cy, w, h in input pixels, then sigmoid obj and classes."""
        return self.geometry.decode(maps)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the implicit tensors: ``m(conv(x + a))`` = conv' with ``W' = m W``, ``b' = m (b + W a)``."""
        if self.fused:
            return
        for conv, ia, im in zip(self.m, self.ia, self.im):
            w, b = conv.weight.double(), conv.bias.double()
            scale = im.implicit.double().flatten()
            b = (b + w.flatten(1) @ ia.implicit.double().flatten()) * scale
            conv.weight.copy_(w * scale.view(-1, 1, 1, 1))
            conv.bias.copy_(b)
        del self.ia, self.im
        self.fused = True

    def drop_aux(self) -> None:
        self.m2 = None
