"""Spatial pyramid pooling with a CSP shortcut: SPPCSPC (yolov7 and up) and tiny's SPPCSP."""

from __future__ import annotations

import torch
from torch import nn

from .conv import Conv


class SPPCSPC(nn.Module):
    """SPPCSPC, ``[B, c1, H, W] -> [B, c2, H, W]``, hidden width ``c2``, pools 5/9/13."""

    def __init__(self, c1: int, c2: int, act: str = "silu", k: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        c_ = c2
        self.cv1 = Conv(c1, c_, 1, act=act)
        self.cv2 = Conv(c1, c_, 1, act=act)
        self.cv3 = Conv(c_, c_, 3, act=act)
        self.cv4 = Conv(c_, c_, 1, act=act)
        self.m = nn.ModuleList(nn.MaxPool2d(x, 1, x // 2) for x in k)
        self.cv5 = Conv((len(k) + 1) * c_, c_, 1, act=act)
        self.cv6 = Conv(c_, c_, 3, act=act)
        self.cv7 = Conv(2 * c_, c2, 1, act=act)
        self.c2 = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.cv6(self.cv5(torch.cat([x1] + [m(x1) for m in self.m], 1)))
        return self.cv7(torch.cat([y1, self.cv2(x)], 1))

    def official_layers(self) -> list:
        return [self]


class SPPCSPTiny(nn.Module):
    """The tiny model's SPP-CSP written out as 9 official layers, ``[B,c1,H,W] -> [B,c2,H,W]``."""

    def __init__(self, c1: int, c2: int, act: str = "leaky", k: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        self.cv1 = Conv(c1, c2, 1, act=act)  # shortcut branch
        self.cv2 = Conv(c1, c2, 1, act=act)
        self.m = nn.ModuleList(nn.MaxPool2d(x, 1, x // 2) for x in k)
        self.cv3 = Conv((len(k) + 1) * c2, c2, 1, act=act)
        self.cv4 = Conv(2 * c2, c2, 1, act=act)
        self.c2 = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = self.cv2(x)
        pooled = [m(x2) for m in self.m][::-1]  # official concat order: [sp13, sp9, sp5, x]
        y = self.cv3(torch.cat(pooled + [x2], 1))
        return self.cv4(torch.cat([y, self.cv1(x)], 1))

    def official_layers(self) -> list:
        return [self.cv1, self.cv2, None, None, None, None, self.cv3, None, self.cv4]
