"""Down-sampling transitions: MP, MP-Conv (MP-1/MP-2), DownC, ReOrg, and the stride-1 pool SP.

Every block lists its ``official_layers()``: one entry per layer of the official YAML it stands for
(the module holding that layer's tensors, or ``None`` for a layer without tensors), in YAML order.
The model builder numbers them to map official ``model.<i>.*`` keys to ours.
"""

from __future__ import annotations

import torch
from torch import nn

from .conv import Conv


class MP(nn.Module):
    """Max-pool 2x2 stride 2: ``[B, C, H, W] -> [B, C, H/2, W/2]``."""

    def __init__(self):
        super().__init__()
        self.m = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)

    def official_layers(self) -> list:
        return [None]


class SP(nn.Module):
    """Max-pool k x k stride 1 with same padding (tiny SPP)."""

    def __init__(self, k: int):
        super().__init__()
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


class ReOrg(nn.Module):
    """Space-to-depth: ``[B, C, H, W] -> [B, 4C, H/2, W/2]`` in the official channel order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)

    def official_layers(self) -> list:
        return [None]


class MPConv(nn.Module):
    """MP-1 / MP-2 transition: ``cat[conv3x3_s2(conv1x1 x), conv1x1(maxpool x)]``.

    Shape: ``[B, c1, H, W] -> [B, 2*c, H/2, W/2]`` (``c`` = width of each branch). In the neck an
    optional ``lateral`` tensor is appended to the same concatenation, as the official MP-2 does.
    """

    def __init__(self, c1: int, c: int, act: str = "silu"):
        super().__init__()
        self.mp = nn.MaxPool2d(2, 2)
        self.cv1 = Conv(c1, c, 1, 1, act=act)  # pool branch
        self.cv2 = Conv(c1, c, 1, 1, act=act)  # conv branch
        self.cv3 = Conv(c, c, 3, 2, act=act)
        self.c2 = 2 * c

    def forward(self, x: torch.Tensor, lateral: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.cv3(self.cv2(x)), self.cv1(self.mp(x))]
        if lateral is not None:
            parts.append(lateral)
        return torch.cat(parts, 1)

    def official_layers(self) -> list:
        return [None, self.cv1, self.cv2, self.cv3, None]  # MP, 1x1, 1x1, 3x3 s2, Concat


class DownC(nn.Module):
    """DownC: ``cat[conv3x3_s2(conv1x1 x), conv1x1(maxpool x)]``, ``[B,c1,H,W] -> [B,c2,H/2,W/2]``.

    Unlike MP-Conv, the first 1x1 keeps ``c1`` channels (as the official block does).
    """

    def __init__(self, c1: int, c2: int, act: str = "silu"):
        super().__init__()
        self.cv1 = Conv(c1, c1, 1, 1, act=act)
        self.cv2 = Conv(c1, c2 // 2, 3, 2, act=act)
        self.cv3 = Conv(c1, c2 // 2, 1, 1, act=act)
        self.mp = nn.MaxPool2d(2, 2)
        self.c2 = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.cv2(self.cv1(x)), self.cv3(self.mp(x))], 1)

    def official_layers(self) -> list:
        return [self]


class ConvDown(Conv):
    """A plain Conv 3x3 stride 2 used as a transition (tiny neck, W6)."""

    def __init__(self, c1: int, c2: int, act: str = "silu"):
        super().__init__(c1, c2, 3, 2, act=act)
        self.c2 = c2

    def official_layers(self) -> list:
        return [self]
