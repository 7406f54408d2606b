"""RepConv: a 3x3 + 1x1 (+ identity) training block re-parameterised into one 3x3 conv."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import fold_bn, make_act, make_bn


class RepConv(nn.Module):
    """``act(BN(conv3x3 x) + BN(conv1x1 x) [+ BN(x)])``; deploy form ``act(conv3x3' x)``.

    Shape: ``[B, c1, H, W] -> [B, c2, H/s, W/s]``.

    ``identity`` selects the identity branch. ``None`` is the *planned* rule of the paper
    (RepConvN: no identity branch, because the layer's output feeds a concatenation / head where an
    identity would destroy the gradient diversity); ``True`` forces the RepVGG-style identity
    branch, which needs ``c1 == c2`` and ``s == 1`` (the "RepConv with identity" ablation).
    The official configs never satisfy ``c1 == c2``, so both rules build the same network there.
    """

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, act: str = "silu", identity: bool | None = None):
        super().__init__()
        if k != 3:
            raise ValueError("RepConv supports k=3 only")
        if identity and (c1 != c2 or s != 1):
            raise ValueError(f"RepConv identity branch needs c1 == c2 and s == 1 (got c1={c1}, c2={c2}, s={s})")
        self.c1, self.c2, self.s = c1, c2, s
        self.act = make_act(act)
        self.rbr_identity = make_bn(c1) if identity else None
        self.rbr_dense = nn.Sequential(nn.Conv2d(c1, c2, 3, s, 1, bias=False), make_bn(c2))
        self.rbr_1x1 = nn.Sequential(nn.Conv2d(c1, c2, 1, s, 0, bias=False), make_bn(c2))
        self.rbr_reparam: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rbr_reparam is not None:
            return self.act(self.rbr_reparam(x))
        y = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            y = y + self.rbr_identity(x)
        return self.act(y)

    @torch.no_grad()
    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 kernel and bias equal to the sum of the branches (eval-mode BN)."""
        dtype = self.rbr_dense[0].weight.dtype
        w3, b3 = fold_bn(self.rbr_dense[0].weight.double(), None, self.rbr_dense[1])
        w1, b1 = fold_bn(self.rbr_1x1[0].weight.double(), None, self.rbr_1x1[1])
        w, b = w3 + F.pad(w1, [1, 1, 1, 1]), b3 + b1
        if self.rbr_identity is not None:
            eye = torch.zeros_like(w3)
            eye[torch.arange(self.c1), torch.arange(self.c1), 1, 1] = 1.0
            wi, bi = fold_bn(eye, None, self.rbr_identity)
            w, b = w + wi, b + bi
        return w.to(dtype), b.to(dtype)

    @torch.no_grad()
    def fuse(self) -> None:
        """Replace the branches by ``rbr_reparam`` (idempotent)."""
        if self.rbr_reparam is not None:
            return
        w, b = self.equivalent_kernel_bias()
        conv = nn.Conv2d(self.c1, self.c2, 3, self.s, 1, bias=True, device=w.device, dtype=w.dtype)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        self.rbr_reparam = conv
        del self.rbr_dense, self.rbr_1x1, self.rbr_identity
        self.rbr_identity = None
