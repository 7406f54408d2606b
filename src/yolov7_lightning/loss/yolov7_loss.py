"""The YOLOv7 loss: 1 - CIoU boxes, objectness BCE on the clamped-CIoU soft target, class BCE;
lead + ``aux_weight`` x aux; level balance; gains scaled by levels, classes and image size.

Returns the total (x batch size, as the official loss) and every component separately.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..assign.assigner import Assigner, HeadAssignment, HeadRule
from ..assign.targets import PaddedTargets
from ..boxes import ciou
from ..models.head_geometry import HeadGeometry
from ..models.heads import HeadOutputs
from .spec import COARSE_BOUNDS, LossSpec
from ..errors import ConfigError

BALANCE = {3: (4.0, 1.0, 0.4)}
BALANCE_DEFAULT = (4.0, 1.0, 0.25, 0.06, 0.02)


class LossOutput(NamedTuple):
    """``total`` (differentiable, x batch size) and detached components: ``lead/box``, ``lead/obj``,
    ``lead/cls``, ``aux/...`` (after gains, before the aux weight and the batch size)."""

    total: torch.Tensor
    components: dict[str, torch.Tensor]


def scaled_gains(box: float, obj: float, cls: float, levels: int, num_classes: int, image_size: int):
    """The official scaling of the hyp gains by number of levels, classes and image size."""
    f = 3 / levels
    return box * f, obj * (image_size / 640) ** 2 * f, cls * num_classes / 80 * f


def default_assigner(aux_head: bool, geometry: HeadGeometry | None = None) -> Assigner:
    """The official assigner for a model with / without the aux head: coarse-to-fine
    (``ComputeLossAuxOTA``) or lead-only OTA, 3-cell, top-10 (``ComputeLossOTA``)."""
    assigner = Assigner() if aux_head else Assigner(strategy="lead_only", lead=HeadRule(0.5, 10))
    return assigner if geometry is None else assigner.with_geometry(geometry)


class YOLOv7Loss(nn.Module):
    """``loss(outputs: HeadOutputs, targets [N, 6] pixels) -> LossOutput``.

    ``geometry``: the head's strides, anchors and decoder (``model.detect.geometry``), also given to
    the assigner. Without ``assigner``: the official one for the heads it is given (``default_assigner``).
    The settings are the fields of :class:`LossSpec` (``YOLOv7Loss(..., **asdict(spec))``), its defaults."""

    def __init__(self, num_classes: int, geometry: HeadGeometry, assigner: Assigner | None = None,
                 box: float = LossSpec.box, obj: float = LossSpec.obj, cls: float = LossSpec.cls,
                 balance: list[float] | None = LossSpec.balance, label_smoothing: float = LossSpec.label_smoothing,
                 aux_weight: float = LossSpec.aux_weight, coarse_bound: str = LossSpec.coarse_bound,
                 image_size: int = 640):
        super().__init__()
        if coarse_bound not in COARSE_BOUNDS:
            raise ConfigError(f"unknown loss.coarse_bound {coarse_bound!r}; valid: {', '.join(COARSE_BOUNDS)}")
        self.nc, self.geometry = num_classes, geometry
        self.assigner = assigner.with_geometry(geometry) if assigner is not None else None
        self.aux_weight, self.coarse_bound = aux_weight, coarse_bound
        nl = geometry.nl
        self.balance = list(balance) if balance else list(BALANCE.get(nl, BALANCE_DEFAULT[:nl]))
        if len(self.balance) != nl:
            raise ConfigError(f"loss.balance has {len(self.balance)} values for {nl} levels")
        self.box_gain, self.obj_gain, self.cls_gain = scaled_gains(box, obj, cls, nl, num_classes, image_size)
        self.cp, self.cn = 1.0 - label_smoothing / 2, label_smoothing / 2

    def forward(self, outputs: HeadOutputs, targets: torch.Tensor) -> LossOutput:
        if self.assigner is None:
            self.assigner = default_assigner(outputs.aux is not None, self.geometry)
        result = self.assigner(outputs, targets)
        lead = self.head_loss(outputs.lead, result.lead, result.targets)
        comps = {"lead/box": lead[0], "lead/obj": lead[1], "lead/cls": lead[2]}
        total = sum(lead)
        if outputs.aux is not None and result.aux is not None:
            bound = self.coarse_bound
            cap = self._fine_occupancy(outputs.lead, result.lead) if bound == "distance" else None
            aux = self.head_loss(outputs.aux, result.aux, result.targets,
                                 xy_scale=3.0 if bound == "none" else 2.0, fine=cap)
            comps.update({"aux/box": aux[0], "aux/obj": aux[1], "aux/cls": aux[2]})
            total = total + self.aux_weight * sum(aux)
        batch = outputs.lead[0].shape[0]
        comps = {k: v.detach() for k, v in comps.items()}
        comps["total"] = total.detach()
        return LossOutput(total * batch, comps)

    @staticmethod
    def _fine_occupancy(preds: list[torch.Tensor], fine: HeadAssignment) -> list[torch.Tensor]:
        """Per level, a flat ``[B*A*H*W]`` map: 1 where the lead head has a (fine) positive."""
        out = []
        for lvl, p in enumerate(preds):
            on, flat = fine.candidates.on_level(lvl)
            occ = torch.zeros(p[..., 0].numel(), device=p.device)
            pos = (fine.assignment.positive & on).float()
            out.append(occ.scatter_reduce_(0, flat.reshape(-1), pos.reshape(-1), "amax"))
        return out

    def head_loss(self, preds: list[torch.Tensor], ha: HeadAssignment, targets: PaddedTargets,
                  xy_scale: float = 2.0, fine: list[torch.Tensor] | None = None):
        """(box, obj, cls) of one head, gains applied; boxes in grid units of each column's cell."""
        cands, asg = ha
        raw = cands.gather(preds)  # [B, C, 5 + nc], with gradients (the assigner gathered detached maps)
        pos = asg.positive
        bidx = torch.arange(pos.shape[0], device=pos.device)[:, None]
        box = self.geometry.to_cells(targets.boxes[bidx, asg.gt].to(raw.dtype), cands)
        tbox = torch.where(pos[..., None], box, torch.full_like(box, 0.5))  # finite dummies off the positives
        iou = ciou(self.geometry.decode_cells(raw, cands, xy_scale), tbox)  # [B, C]
        tobj_value = iou.detach().clamp(min=0)
        classes = targets.classes[bidx, asg.gt]  # one-hot by comparison: F.one_hot would synchronise
        onehot = (classes[..., None] == torch.arange(self.nc, device=raw.device)).to(raw.dtype)
        tcls = onehot * self.cp + (1 - onehot) * self.cn
        cls_bce = F.binary_cross_entropy_with_logits(raw[..., 5:], tcls, reduction="none").sum(-1)
        if fine is not None:  # coarse_bound=distance: cap coarse-only objectness by distance from the centre
            centre = box[..., :2] - 0.5
            cap = (1.5 - centre.abs().amax(-1)).clamp(0, 1)
            is_fine = sum(torch.where(on, f[flat], 0) for f, (on, flat) in
                          zip(fine, (cands.on_level(lvl) for lvl in range(cands.levels)))) > 0
            tobj_value = torch.where(is_fine, tobj_value, torch.minimum(tobj_value, cap))
        tobj_value = torch.where(pos, tobj_value, torch.zeros_like(tobj_value))
        lbox = lobj = lcls = raw.new_zeros(())
        for lvl in range(cands.levels):
            on, flat = cands.on_level(lvl)
            p = pos & on
            n = p.sum().clamp(min=1)
            lbox = lbox + torch.where(p, 1 - iou, 0).sum() / n
            if self.nc > 1:
                lcls = lcls + torch.where(p, cls_bce, 0).sum() / (n * self.nc)
            tobj = torch.zeros(preds[lvl][..., 4].numel(), dtype=raw.dtype, device=raw.device)
            tobj = tobj.scatter_reduce(0, flat.reshape(-1), torch.where(on, tobj_value, 0).reshape(-1), "amax")
            lobj = lobj + F.binary_cross_entropy_with_logits(preds[lvl][..., 4].reshape(-1), tobj) * self.balance[lvl]
        return lbox * self.box_gain, lobj * self.obj_gain, lcls * self.cls_gain
