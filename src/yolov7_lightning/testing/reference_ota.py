"""A plain, per-image reference of the official YOLOv7 assignment and loss (loops allowed).

It follows the structure of the official ``ComputeLossOTA`` / ``ComputeLossAuxOTA``: candidates
per level, then a Python loop over images, a cost matrix per image, a loop over boxes for the
dynamic-k selection, conflict resolution, and the loss with compacted positives. Two deliberate
differences, shared with the batched implementation: boxes are in input pixels (the official code
scales by the image height, wrong for non-square inputs), and ties are broken by column order
(box, offset, anchor) with a stable sort. Duplicate writes of one objectness cell keep the max.
The primitives (IoU, CIoU, class cost) are shared with the product code; they are tested on their
own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from yolov7_lightning.assign.simota import class_cost
from yolov7_lightning.boxes import ciou, pairwise_iou, xywh_to_xyxy

OFFSETS = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))


def candidates(targets, grids, anchors, strides, offset, anchor_t):
    """Per level, a list of columns (b, a, gj, gi, slot): box ``slot`` of image ``b`` generated it.

    Vectorised over boxes per level, as the official ``find_3_positive`` / ``find_5_positive``.
    """
    slots = torch.zeros(len(targets), dtype=torch.long)
    for i in range(len(targets)):
        slots[i] = int((targets[:i, 0] == targets[i, 0]).sum())
    off = torch.tensor(OFFSETS, dtype=torch.float32) * offset
    out = []
    for lvl, ((h, w), s) in enumerate(zip(grids, strides)):
        cols = []
        gxy, gwh = targets[:, 2:4] / s, targets[:, 4:6] / s
        far = torch.tensor([w, h], dtype=torch.float32) - gxy
        near_ok, far_ok = (gxy % 1 < offset) & (gxy > 1), (far % 1 < offset) & (far > 1)
        allowed = torch.stack((torch.ones(len(targets), dtype=torch.bool), near_ok[:, 0], near_ok[:, 1],
                               far_ok[:, 0], far_ok[:, 1]), 1)  # [N, 5]
        for n in range(len(targets)):  # plain loops over boxes, offsets and anchors
            for o in range(5):
                if not allowed[n, o]:
                    continue
                cell = (gxy[n] - off[o]).long()
                gi, gj = min(max(int(cell[0]), 0), w - 1), min(max(int(cell[1]), 0), h - 1)
                for a in range(anchors.shape[1]):
                    r = gwh[n] / anchors[lvl, a]
                    if float(torch.maximum(r, 1 / r).max()) < anchor_t:
                        cols.append((int(targets[n, 0]), a, gj, gi, int(slots[n])))
        out.append(cols)
    return out


def assign(preds, targets, anchors, strides, offset, topk, anchor_t=4.0, iou_weight=3.0, cls_weight=1.0,
           cross_gt=True):
    """Positives per level: list of (b, a, gj, gi, slot)."""
    grids = [(p.shape[2], p.shape[3]) for p in preds]
    cols = candidates(targets, grids, anchors, strides, offset, anchor_t)
    result = [[] for _ in preds]
    for b in range(preds[0].shape[0]):
        mine = targets[targets[:, 0] == b]
        if len(mine) == 0:
            continue
        gt_xyxy = xywh_to_xyxy(mine[:, 2:6])
        raws, boxes, where = [], [], []
        for lvl, level_cols in enumerate(cols):
            for col in level_cols:
                if col[0] != b:
                    continue
                _, a, gj, gi, slot = col
                p = preds[lvl][b, a, gj, gi]
                s = strides[lvl]
                xy = (p[:2].sigmoid() * 2 - 0.5 + torch.tensor([gi, gj], dtype=p.dtype)) * s
                wh = (p[2:4].sigmoid() * 2) ** 2 * anchors[lvl, a] * s
                raws.append(p)
                boxes.append(torch.cat((xy, wh)))
                where.append((lvl, a, gj, gi, slot))
        if not raws:
            continue
        raw = torch.stack(raws)
        iou = pairwise_iou(gt_xyxy, xywh_to_xyxy(torch.stack(boxes)))
        cost = cls_weight * class_cost(raw[None], mine[:, 1].long()[None])[0] + iou_weight * -torch.log(iou + 1e-8)
        if not cross_gt:
            own = torch.tensor([[w[4] == g for w in where] for g in range(len(mine))])
            iou = torch.where(own, iou, torch.zeros_like(iou))
            cost = torch.where(own, cost, torch.full_like(cost, math.inf))
        k = min(topk, iou.shape[1])
        dynamic_k = torch.clamp(torch.topk(iou, k, dim=1).values.sum(1).int(), min=1)
        matching = torch.zeros_like(cost)
        for g in range(len(mine)):
            chosen = torch.argsort(cost[g], stable=True)[: int(dynamic_k[g].item())]
            chosen = [c for c in chosen.tolist() if math.isfinite(cost[g, c].item())]
            matching[g, chosen] = 1.0
        for c in range(matching.shape[1]):
            if matching[:, c].sum() > 1:
                best = int(torch.argmin(cost[:, c]))
                matching[:, c] = 0.0
                matching[best, c] = 1.0
        for c in range(matching.shape[1]):
            if matching[:, c].sum() > 0:
                lvl, a, gj, gi, _ = where[c]
                result[lvl].append((b, a, gj, gi, int(matching[:, c].argmax())))
    return result


def _slot_rows(targets):
    rows, slots = {}, {}
    for i, b in enumerate(targets[:, 0].long().tolist()):
        slot = slots.get(b, 0)
        slots[b] = slot + 1
        rows[(b, slot)] = i
    return rows


def head_loss(preds, positives, targets, anchors, strides, nc, gains, balance, xy_scale=2.0, cap_fine=None,
              cp=1.0, cn=0.0):
    rows = _slot_rows(targets)
    lbox = lobj = lcls = torch.zeros(())
    for lvl, pos in enumerate(positives):
        p = preds[lvl]
        tobj = torch.zeros_like(p[..., 4])
        if pos:
            ps = torch.stack([p[b, a, gj, gi] for b, a, gj, gi, _ in pos])
            grid = torch.tensor([[gi, gj] for _, _, gj, gi, _ in pos], dtype=p.dtype)
            t = targets[[rows[(b, slot)] for b, _, _, _, slot in pos]]
            tbox = t[:, 2:6] / strides[lvl]
            tbox = torch.cat((tbox[:, :2] - grid, tbox[:, 2:]), 1)
            pxy = ps[:, :2].sigmoid() * xy_scale - (xy_scale - 1) / 2
            pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * anchors[lvl, [a for _, a, _, _, _ in pos]]
            iou = ciou(torch.cat((pxy, pwh), 1), tbox)
            lbox = lbox + (1 - iou).mean()
            for n, (b, a, gj, gi, _) in enumerate(pos):
                value = iou[n].detach().clamp(min=0)
                if cap_fine is not None and (b, a, gj, gi) not in cap_fine[lvl]:
                    d = (tbox[n, :2] - 0.5).abs().max()
                    value = torch.minimum(value, (1.5 - d).clamp(0, 1))
                tobj[b, a, gj, gi] = torch.maximum(tobj[b, a, gj, gi], value)
            if nc > 1:
                tc = torch.full_like(ps[:, 5:], cn)
                tc[range(len(pos)), t[:, 1].long()] = cp
                lcls = lcls + F.binary_cross_entropy_with_logits(ps[:, 5:], tc)
        lobj = lobj + F.binary_cross_entropy_with_logits(p[..., 4], tobj) * balance[lvl]
    return lbox * gains[0], lobj * gains[1], lcls * gains[2]


def loss(outputs, targets, anchors, strides, nc, strategy="coarse_to_fine", gains=(0.05, 0.7, 0.3), balance=None,
         coarse_bound="decoder", lead_rule=(0.5, 20), aux_rule=(1.0, 20), lead_only_rule=(0.5, 10), aux_weight=0.25,
         label_smoothing=0.0, cross_gt=True):
    """Total (x batch) and components, as the official losses compute them."""
    nl = len(strides)
    balance = balance or ([4.0, 1.0, 0.4] if nl == 3 else [4.0, 1.0, 0.25, 0.06, 0.02][:nl])
    cp, cn = 1 - label_smoothing / 2, label_smoothing / 2
    lead_preds = [p.detach() for p in outputs.lead]
    if outputs.aux is None:
        pos = assign(lead_preds, targets, anchors, strides, *lead_only_rule, cross_gt=cross_gt)
        parts = head_loss(outputs.lead, pos, targets, anchors, strides, nc, gains, balance, cp=cp, cn=cn)
        return sum(parts) * outputs.lead[0].shape[0], {"lead": pos}
    fine = assign(lead_preds, targets, anchors, strides, *lead_rule, cross_gt=cross_gt)
    if strategy == "lead_guided":
        coarse = fine
    elif strategy == "independent":
        coarse = assign([p.detach() for p in outputs.aux], targets, anchors, strides, *aux_rule, cross_gt=cross_gt)
    else:
        coarse = assign(lead_preds, targets, anchors, strides, *aux_rule, cross_gt=cross_gt)
    lead = head_loss(outputs.lead, fine, targets, anchors, strides, nc, gains, balance, cp=cp, cn=cn)
    cap = [{p[:4] for p in level} for level in fine] if coarse_bound == "distance" else None
    aux = head_loss(outputs.aux, coarse, targets, anchors, strides, nc, gains, balance,
                    xy_scale=3.0 if coarse_bound == "none" else 2.0, cap_fine=cap, cp=cp, cn=cn)
    total = sum(lead) + aux_weight * sum(aux)
    return total * outputs.lead[0].shape[0], {"lead": fine, "aux": coarse}
