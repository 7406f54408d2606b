"""The YOLOv7 network assembled from a variant table: backbone, neck, lead (+ aux) head."""

from __future__ import annotations

import torch
from torch import nn

from ..nn import (
    EELAN,
    ELAN,
    ELAN_REPCONV_MODES,
    MP,
    SPPCSPC,
    Conv,
    ConvDown,
    DownC,
    EELANGrouped,
    ELANSpec,
    MPConv,
    ReOrg,
    RepConv,
    SPPCSPTiny,
)
from .arch import Arch
from .heads import HeadOutputs, IDetect
from .spec import ModelSpec
from ..errors import ConfigError

REPCONV_MODES = ("planned", "identity", "off")
EELAN_FORMS = ("branches", "grouped")
AUX_TAPS = ("branch", "merged")


def _elan(c1: int, spec: ELANSpec, act: str, eelan: bool, form: str, rep: str = "none") -> nn.Module:
    """``rep``: ``model.elan_repconv``, the form of the computational blocks' 3x3 convs."""
    if not eelan:
        return ELAN(c1, spec, act, repconv=rep)
    return (EELAN if form == "branches" else EELANGrouped)(c1, spec, act, repconv=rep)


def _down(kind: str, c1: int, width: int, act: str) -> nn.Module:
    if kind == "mp":
        return MP()
    if kind == "mpconv":
        return MPConv(c1, width, act)
    if kind == "conv":
        return ConvDown(c1, width, act)
    if kind == "downc":
        return DownC(c1, width, act)
    raise ValueError(f"unknown transition {kind!r}")


def _out_channels(m: nn.Module, c1: int) -> int:
    return getattr(m, "c2", c1)


class Stage(nn.Module):
    """An optional transition then an ELAN / E-ELAN."""

    def __init__(self, down: nn.Module | None, elan: nn.Module):
        super().__init__()
        self.down, self.elan = down, elan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.elan(self.down(x) if self.down is not None else x)


class Backbone(nn.Module):
    """Stem then stages; returns the outputs of the last ``levels`` stages (P3 .. P5/P6)."""

    def __init__(self, arch: Arch, eelan_form: str = "branches", elan_repconv: str = "none"):
        super().__init__()
        c, layers = 3, []
        for spec in arch.stem:
            if spec == "reorg":
                layers.append(ReOrg())
                c *= 4
            else:
                layers.append(Conv(c, spec[0], spec[1], spec[2], act=arch.act))
                c = spec[0]
        self.stem = nn.Sequential(*layers)
        self.stages = nn.ModuleList()
        self.channels: list[int] = []
        for i, (width, spec) in enumerate(arch.stages):
            down = None
            if width is not None and not (arch.down == "mp" and i == 0):
                down = _down(arch.down, c, width, arch.act)
                c = _out_channels(down, c)
            self.stages.append(Stage(down, _elan(c, spec, arch.act, arch.eelan, eelan_form, elan_repconv)))
            c = spec.c2
            self.channels.append(c)
        self.levels = arch.levels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs[-self.levels:]


class TopDown(nn.Module):
    """``ELAN(cat[lateral(skip), up(reduce(x))])``; returns (output, aux tap)."""

    def __init__(self, c_in: int, c_skip: int, width: int, spec: ELANSpec, act: str, eelan: bool, form: str,
                 rep: str = "none"):
        super().__init__()
        self.reduce = Conv(c_in, width, 1, act=act)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral = Conv(c_skip, width, 1, act=act)
        self.elan = _elan(2 * width, spec, act, eelan, form, rep)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.elan.forward_tap(torch.cat([self.lateral(skip), self.up(self.reduce(x))], 1))


class BottomUp(nn.Module):
    """``ELAN(cat[down(x), lateral])`` (MP-2 puts the lateral into its own concatenation)."""

    def __init__(self, kind: str, c_in: int, c_lat: int, width: int, spec: ELANSpec, act: str, eelan: bool, form: str,
                 rep: str = "none"):
        super().__init__()
        self.down = _down(kind, c_in, width, act)
        self.elan = _elan(_out_channels(self.down, c_in) + c_lat, spec, act, eelan, form, rep)

    def forward(self, x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        if isinstance(self.down, MPConv):
            return self.elan(self.down(x, lateral))
        return self.elan(torch.cat([self.down(x), lateral], 1))


class Neck(nn.Module):
    """SPPCSPC, top-down path, bottom-up path. Returns lead features (P3 up) and aux features
    (the top-down features, P3 up, read before the E-ELAN merge when ``aux_tap == 'branch'``)."""

    def __init__(self, arch: Arch, channels: list[int], eelan_form: str = "branches", elan_repconv: str = "none"):
        super().__init__()
        kind, width = arch.spp
        self.spp = (SPPCSPTiny if kind == "tiny" else SPPCSPC)(channels[-1], width, act=arch.act)
        c, td_channels = width, [width]
        self.top_down = nn.ModuleList()
        for i, (w, spec) in enumerate(arch.top_down):
            self.top_down.append(TopDown(c, channels[-2 - i], w, spec, arch.act, arch.eelan, eelan_form, elan_repconv))
            c = spec.c2
            td_channels.append(c)
        self.bottom_up = nn.ModuleList()
        self.out_channels = [c]
        for i, (w, spec) in enumerate(arch.bottom_up):
            self.bottom_up.append(BottomUp(arch.neck_down, c, td_channels[-2 - i], w, spec, arch.act, arch.eelan,
                                           eelan_form, elan_repconv))
            c = spec.c2
            self.out_channels.append(c)
        self.aux_channels = td_channels[::-1]

    def forward(self, feats: list[torch.Tensor], merged_taps: bool = False):
        x = self.spp(feats[-1])
        td, taps = [x], [x]
        for i, block in enumerate(self.top_down):
            x, tap = block(x, feats[-2 - i])
            td.append(x)
            taps.append(x if merged_taps else tap)
        outs = [x]
        for i, block in enumerate(self.bottom_up):
            x = block(x, td[-2 - i])
            outs.append(x)
        return outs, taps[::-1]


class YOLOv7(nn.Module):
    """A YOLOv7 network.

    ``forward(images [B,3,H,W])``: in training mode returns :class:`HeadOutputs` (raw lead and aux
    maps ``[B, A, H/s, W/s, 5 + nc]``); in eval mode the decoded ``[B, N, 5 + nc]`` (cx, cy, w, h in
    input pixels, sigmoid objectness and class scores). H and W must be multiples of ``max_stride``.

    Built from a :class:`ModelSpec` (``build_model``). ``repconv`` is the form of the lead output
    convs of the variants that have RepConv there (yolov7); ``elan_repconv`` (``none`` = official |
    ``planned`` | ``identity``) re-parameterises the 3x3 convs of every ELAN computational block (the
    paper's Table 4 ablation; same deploy network).
    """

    def __init__(self, arch: Arch, spec: ModelSpec):
        """``arch``: the (scaled) variant table of ``spec``; the switches are read from ``spec``."""
        super().__init__()
        num_classes, aux_head, repconv = spec.num_classes, spec.aux_head, spec.repconv
        eelan_form, aux_tap, elan_repconv = spec.eelan_form, spec.aux_tap, spec.elan_repconv
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1 (got {num_classes})")
        for name, value, valid in (("repconv", repconv, REPCONV_MODES), ("eelan_form", eelan_form, EELAN_FORMS),
                                   ("aux_tap", aux_tap, AUX_TAPS), ("elan_repconv", elan_repconv, ELAN_REPCONV_MODES)):
            if value not in valid:
                raise ConfigError(f"unknown model.{name} {value!r}; valid: {', '.join(valid)}")
        self.arch, self.num_classes = arch, num_classes
        self.aux_head = arch.has_aux_head(aux_head)
        self.aux_tap = aux_tap
        if elan_repconv != "none" and arch.eelan and eelan_form != "branches":
            raise ConfigError("model.elan_repconv needs eelan_form=branches (RepConv has no grouped form)")
        self.elan_repconv = elan_repconv
        self.backbone = Backbone(arch, eelan_form, elan_repconv)
        self.neck = Neck(arch, self.backbone.channels, eelan_form, elan_repconv)
        kind, widths = arch.lead
        lead = []
        for c, w in zip(self.neck.out_channels, widths):
            if kind == "repconv" and repconv != "off":
                lead.append(RepConv(c, w, 3, 1, act=arch.act, identity=(repconv == "identity" and c == w) or None))
            else:
                lead.append(Conv(c, w, 3, 1, act=arch.act))
        self.lead_convs = nn.ModuleList(lead)
        self.aux_convs = (nn.ModuleList(Conv(c, w, 3, 1, act=arch.act) for c, w in zip(self.neck.aux_channels, arch.aux))
                          if self.aux_head else None)
        self.detect = IDetect(num_classes, arch.anchors, arch.strides, widths, arch.aux if self.aux_head else None)
        self.max_stride = max(arch.strides)
        self.deploy = False

    def check_input(self, x: torch.Tensor) -> None:
        h, w = x.shape[-2:]
        s = self.max_stride
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.arch.name}: expected images [B, 3, H, W], got {tuple(x.shape)}")
        if int(h) % s or int(w) % s:
            raise ValueError(f"{self.arch.name}: input {int(h)}x{int(w)} is not divisible by the max stride {s}; "
                             f"letterbox or pad the image to a multiple of {s}")

    def forward_heads(self, x: torch.Tensor, with_aux: bool = True) -> HeadOutputs:
        """Raw head maps in any mode (the loss and validation use this)."""
        self.check_input(x)
        feats, taps = self.neck(self.backbone(x), merged_taps=self.aux_tap == "merged")
        lead = [conv(f) for conv, f in zip(self.lead_convs, feats)]
        aux = None
        if with_aux and self.aux_convs is not None:
            aux = [conv(f) for conv, f in zip(self.aux_convs, taps)]
        return self.detect(lead, aux)

    def decode(self, outputs: HeadOutputs) -> torch.Tensor:
        return self.detect.decode(outputs.lead)

    def forward(self, x: torch.Tensor):
        if self.training:
            return self.forward_heads(x)
        return self.decode(self.forward_heads(x, with_aux=False))  # unlike the official code, eval skips aux
