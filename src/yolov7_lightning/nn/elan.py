"""ELAN and E-ELAN, the computational blocks of YOLOv7.

ELAN: two 1x1 convs read the input; a chain of ``n`` 3x3 convs continues the second one; the
outputs at the end of every ``block``-th 3x3 conv (plus both 1x1 outputs) are concatenated and a
1x1 *transition* conv gives the block output. ``block=2`` is the backbone ELAN (concat
``[-1,-3,-5,-6]`` for n=4), ``block=1`` concatenates every output (head ELAN, tiny).

E-ELAN (E6E) exists in the two equivalent forms the paper describes:

* :class:`EELAN` - the form of the official code: ``cardinality`` independent ELANs read the same
  input and their outputs are summed (official ``Shortcut``).
* :class:`EELANGrouped` - expand / shuffle / merge cardinality: group convolutions with
  ``groups=cardinality``, a channel shuffle before the transition, and a sum over the groups.

:func:`eelan_to_grouped` / :func:`grouped_to_eelan` convert weights exactly between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .conv import Conv
from .repconv import RepConv
from ..errors import ConfigError

ELAN_REPCONV_MODES = ("none", "planned", "identity")


def elan_conv3(c1: int, c2: int, act: str, g: int = 1, repconv: str = "none") -> nn.Module:
    """One 3x3 conv of an ELAN computational block.

    ``repconv``: ``none`` (official: a plain :class:`Conv`), ``planned`` (RepConvN: 3x3 + 1x1, no
    identity, the paper's rule for layers whose output feeds a concatenation) or ``identity``
    (RepConv with the identity branch wherever ``c1 == c2``, RepConvN elsewhere). The RepConv forms
    fuse into one 3x3 conv, so the deploy network is the same as with ``none``.
    """
    if repconv not in ELAN_REPCONV_MODES:
        raise ConfigError(f"unknown model.elan_repconv {repconv!r}; valid: {', '.join(ELAN_REPCONV_MODES)}")
    if repconv == "none":
        return Conv(c1, c2, 3, g=g, act=act)
    if g != 1:
        raise ConfigError("model.elan_repconv needs ungrouped convs (E-ELAN: use eelan_form=branches)")
    return RepConv(c1, c2, 3, 1, act=act, identity=(repconv == "identity" and c1 == c2) or None)


@dataclass(frozen=True)
class ELANSpec:
    """Widths of one ELAN: 1x1 width ``c``, 3x3 width ``c3``, ``n`` 3x3 convs, output ``c2``."""

    c: int
    c3: int
    n: int
    block: int
    c2: int

    def selected(self) -> list[int]:
        """Indices into ``[1x1 #1, 1x1 #2, 3x3 #1 .. #n]`` that are concatenated, in official order."""
        if self.n % self.block:
            raise ValueError(f"ELAN: {self.n} 3x3 convs is not a multiple of the block size {self.block}")
        idx = [0, 1] + [1 + j for j in range(1, self.n + 1) if j % self.block == 0]
        return idx[::-1]  # the official concatenation lists the newest tensor first

    def concat_channels(self) -> int:
        return sum(self.c if i < 2 else self.c3 for i in self.selected())


class ELAN(nn.Module):
    """One ELAN, ``[B, c1, H, W] -> [B, spec.c2, H, W]``.

    ``repconv`` re-parameterises the 3x3 convs of the computational block (see :func:`elan_conv3`).
    """

    def __init__(self, c1: int, spec: ELANSpec, act: str = "silu", groups: int = 1, repconv: str = "none"):
        super().__init__()
        g = groups
        self.spec, self.groups, self.act_name = spec, g, act
        self.cv1 = Conv(c1, g * spec.c, 1, act=act)
        self.cv2 = Conv(c1, g * spec.c, 1, act=act)
        self.m = nn.ModuleList(
            elan_conv3(g * (spec.c if j == 0 else spec.c3), g * spec.c3, act, g=g, repconv=repconv)
            for j in range(spec.n)
        )
        self.transition = Conv(g * spec.concat_channels(), g * spec.c2, 1, g=g, act=act)
        self.c2 = spec.c2

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [self.cv1(x), self.cv2(x)]
        y = outs[1]
        for conv in self.m:
            y = conv(y)
            outs.append(y)
        return [outs[i] for i in self.spec.selected()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transition(torch.cat(self._features(x), 1))

    def forward_tap(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(output, tap)``: the tensor the auxiliary head reads. For a plain ELAN, the output."""
        y = self(x)
        return y, y

    def official_layers(self) -> list:
        return [self.cv1, self.cv2, *self.m, None, self.transition]


class EELAN(nn.Module):
    """E-ELAN, two-branch form: ``sum_i ELAN_i(x)``. The tap is the last branch before the sum."""

    def __init__(self, c1: int, spec: ELANSpec, act: str = "silu", cardinality: int = 2, repconv: str = "none"):
        super().__init__()
        self.spec = spec
        self.branches = nn.ModuleList(ELAN(c1, spec, act, repconv=repconv) for _ in range(cardinality))
        self.c2 = spec.c2

    def forward_tap(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [b(x) for b in self.branches]
        return torch.stack(parts).sum(0), parts[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tap(x)[0]

    def official_layers(self) -> list:
        return [layer for b in self.branches for layer in b.official_layers()] + [None]  # + Shortcut


class EELANGrouped(ELAN):
    """E-ELAN, expand / shuffle / merge-cardinality form (group convs, ``groups=cardinality``).

    Expand: the 1x1 convs produce ``g`` groups of features and the 3x3 chain is group convolution.
    Shuffle: the concatenated features are re-ordered group-major, so that the grouped transition
    sees, for each group, that group's features. Merge: the ``g`` transition outputs are summed.
    """

    def __init__(self, c1: int, spec: ELANSpec, act: str = "silu", cardinality: int = 2, repconv: str = "none"):
        super().__init__(c1, spec, act, groups=cardinality, repconv=repconv)

    def forward_tap(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.groups
        feats = self._features(x)
        b, _, h, w = feats[0].shape
        shuffled = torch.cat([f.reshape(b, g, -1, h, w) for f in feats], 2).reshape(b, -1, h, w)
        y = self.transition(shuffled).reshape(b, g, self.spec.c2, h, w)
        return y.sum(1), y[:, -1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tap(x)[0]

    def official_layers(self) -> list:
        raise NotImplementedError("official keys exist for the two-branch E-ELAN only: convert with grouped_to_eelan")


def _conv_pairs(grouped: EELANGrouped, branches: list[ELAN]):
    yield grouped.cv1, [b.cv1 for b in branches]
    yield grouped.cv2, [b.cv2 for b in branches]
    for j, conv in enumerate(grouped.m):
        yield conv, [b.m[j] for b in branches]
    yield grouped.transition, [b.transition for b in branches]


@torch.no_grad()
def eelan_to_grouped(eelan: EELAN) -> EELANGrouped:
    """The grouped form with the same function: every grouped tensor is the branches' stacked."""
    first = eelan.branches[0]
    out = EELANGrouped(first.cv1.conv.in_channels, eelan.spec, act=first.act_name, cardinality=len(eelan.branches))
    out.load_state_dict(_grouped_state(out, list(eelan.branches)))
    return out.to(first.cv1.conv.weight.device)


def _grouped_state(grouped: EELANGrouped, branches: list[ELAN]) -> dict:
    for g_conv, b_convs in _conv_pairs(grouped, branches):
        for name, t in g_conv.state_dict(keep_vars=True).items():
            parts = [bc.state_dict()[name] for bc in b_convs]
            t.data.copy_(parts[0] if t.ndim == 0 else torch.cat(parts, 0))
    return grouped.state_dict()


@torch.no_grad()
def grouped_to_eelan(grouped: EELANGrouped) -> EELAN:
    """The two-branch form with the same function (inverse of :func:`eelan_to_grouped`)."""
    g = grouped.groups
    out = EELAN(grouped.cv1.conv.in_channels, grouped.spec, act=grouped.act_name, cardinality=g)
    for g_conv, b_convs in _conv_pairs(grouped, list(out.branches)):
        for name, t in g_conv.state_dict().items():
            chunks = [t] * g if t.ndim == 0 else t.chunk(g, 0)
            for bc, chunk in zip(b_convs, chunks):
                bc.state_dict(keep_vars=True)[name].data.copy_(chunk)
    return out.to(grouped.cv1.conv.weight.device)
