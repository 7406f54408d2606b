"""Implicit knowledge (YOLOR): a learned per-channel shift (ImplicitA) or scale (ImplicitM)."""

from __future__ import annotations

import torch
from torch import nn


class ImplicitA(nn.Module):
    """``x + implicit``; ``implicit`` is ``[1, C, 1, 1]`` initialised N(0, 0.02)."""

    def __init__(self, channels: int, std: float = 0.02):
        super().__init__()
        self.implicit = nn.Parameter(torch.zeros(1, channels, 1, 1))
        nn.init.normal_(self.implicit, mean=0.0, std=std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implicit + x


class ImplicitM(nn.Module):
    """``x * implicit``; ``implicit`` is ``[1, C, 1, 1]`` initialised N(1, 0.02)."""

    def __init__(self, channels: int, std: float = 0.02):
        super().__init__()
        self.implicit = nn.Parameter(torch.ones(1, channels, 1, 1))
        nn.init.normal_(self.implicit, mean=1.0, std=std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.implicit * x
