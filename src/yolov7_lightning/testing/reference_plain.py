"""A plain reference of the official non-OTA assignment (``loss_ota: 0``, ``ComputeLoss.build_targets``).

Written the way the official ``build_targets`` is organised, not like the batched code: per level,
the targets are repeated once per anchor, filtered by the anchor shape ratio, then repeated for
the five cell offsets and masked by the neighbour rules (``frac < g`` and more than one cell from
the border); every surviving (box, anchor, cell) is a positive of its own box. The loss reuses
``reference_ota.head_loss`` (compacted positives, one loop per level).
"""

from __future__ import annotations

import torch

from . import reference_ota as ref


def build_targets(targets, grids, anchors, strides, g=0.5, anchor_t=4.0):
    """Per level, a list of (b, a, gj, gi, slot); ``targets [N, 6]`` (image, class, cx, cy, w, h) px."""
    na, nt = anchors.shape[1], len(targets)
    slot = torch.zeros(nt)
    for i in range(nt):
        slot[i] = (targets[:i, 0] == targets[i, 0]).sum()
    ai = torch.arange(na).float().view(na, 1).repeat(1, nt)
    t_all = torch.cat((targets.repeat(na, 1, 1), ai[:, :, None], slot.repeat(na, 1)[:, :, None]), 2)  # [na, nt, 8]
    off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]]).float() * g
    out = []
    for lvl, ((h, w), s) in enumerate(zip(grids, strides)):
        t = t_all.clone()
        t[..., 2:6] /= s
        if nt:
            r = t[..., 4:6] / anchors[lvl][:, None]
            t = t[torch.max(r, 1 / r).max(2)[0] < anchor_t]  # [m, 8]
            gxy = t[:, 2:4]
            gxi = torch.tensor([w, h]).float() - gxy
            j, k = ((gxy % 1.0 < g) & (gxy > 1.0)).T
            lm, m = ((gxi % 1.0 < g) & (gxi > 1.0)).T
            mask = torch.stack((torch.ones_like(j), j, k, lm, m))  # [5, m]
            offsets = (torch.zeros_like(gxy)[None] + off[:, None])[mask]
            t = t.repeat((5, 1, 1))[mask]
        else:
            t, offsets = t_all[0][:0], torch.zeros(0, 2)
        gij = (t[:, 2:4] - offsets).long()
        gi, gj = gij[:, 0].clamp(0, w - 1), gij[:, 1].clamp(0, h - 1)
        out.append([(int(b), int(a), int(y), int(x), int(sl)) for b, a, y, x, sl in
                    zip(t[:, 0], t[:, 6], gj, gi, t[:, 7])])
    return out


def loss(outputs, targets, anchors, strides, nc, gains, lead_g=0.5, aux_g=1.0, aux_weight=0.25, anchor_t=4.0):
    """Total (x batch) and positives, as the official ``ComputeLoss`` computes them (lead + aux)."""
    nl = len(strides)
    balance = [4.0, 1.0, 0.4] if nl == 3 else [4.0, 1.0, 0.25, 0.06, 0.02][:nl]
    grids = [(p.shape[2], p.shape[3]) for p in outputs.lead]
    lead_pos = build_targets(targets, grids, anchors, strides, lead_g, anchor_t)
    total = sum(ref.head_loss(outputs.lead, lead_pos, targets, anchors, strides, nc, gains, balance))
    positives = {"lead": lead_pos}
    if outputs.aux is not None:
        aux_pos = build_targets(targets, grids, anchors, strides, aux_g, anchor_t)
        total = total + aux_weight * sum(ref.head_loss(outputs.aux, aux_pos, targets, anchors, strides, nc, gains,
                                                       balance))
        positives["aux"] = aux_pos
    return total * outputs.lead[0].shape[0], positives
