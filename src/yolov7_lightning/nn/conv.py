"""Conv + BatchNorm + activation, the unit every YOLOv7 layer is made of."""

from __future__ import annotations

import torch
from torch import nn
from ..errors import ConfigError

BN_EPS = 1e-3
BN_MOMENTUM = 0.03
ACTIVATIONS = ("silu", "leaky", "none")


def make_act(name: str) -> nn.Module:
    """The activation by name: ``silu`` (default), ``leaky`` (LeakyReLU(0.1), tiny) or ``none``."""
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "leaky":
        return nn.LeakyReLU(0.1, inplace=True)
    if name == "none":
        return nn.Identity()
    raise ConfigError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


def make_bn(channels: int) -> nn.BatchNorm2d:
    """BatchNorm2d with the official hyper-parameters (eps 1e-3, momentum 0.03)."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


@torch.no_grad()
def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the preceding conv: returns (W', b').

    Computed in float64 (on devices that have it) and cast back, so folding adds no rounding of its own.
    """
    dtype = weight.dtype
    hi = torch.float32 if weight.device.type == "mps" else torch.float64
    scale = bn.weight.to(hi) / torch.sqrt(bn.running_var.to(hi) + bn.eps)
    w = weight.to(hi) * scale.reshape(-1, 1, 1, 1)
    b = bn.bias.to(hi) - bn.running_mean.to(hi) * scale
    if bias is not None:
        b = b + bias.to(hi) * scale
    return w.to(dtype), b.to(dtype)


class Conv(nn.Module):
    """``act(bn(conv(x)))`` with no conv bias and "same" padding.

    Shape: ``[B, c1, H, W] -> [B, c2, H/s, W/s]``. After :meth:`fuse` the BN is folded into a
    biased conv and ``bn`` becomes an identity.
    """

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, g: int = 1, act: str = "silu"):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=g, bias=False)
        self.bn: nn.Module = make_bn(c2)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the BN into the conv (idempotent)."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        w, b = fold_bn(self.conv.weight, self.conv.bias, self.bn)
        c = self.conv
        fused = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, groups=c.groups,
                          bias=True, device=w.device, dtype=w.dtype)
        fused.weight.copy_(w)
        fused.bias.copy_(b)
        self.conv = fused
        self.bn = nn.Identity()
