"""A plain, per-image reference of the official YOLOv7 assignment and loss, written from the
definitions and sharing no code with the package (it imports nothing from ``yolov7_lightning``:
a bug in the package's IoU, CIoU, class cost or decoding cannot pass on both sides).

The definitions (``ComputeLossOTA`` / ``ComputeLossAuxOTA`` of the official YOLOv7, SimOTA of
YOLOX, CIoU of Zheng et al. 2020):

* candidates: per level, for every box and every anchor whose shape passes the ratio filter
  (``max(w/a_w, a_w/w, h/a_h, a_h/h) < anchor_t``, 4.0), the box-centre cell and the neighbours
  towards which the centre leans (left if ``frac(x) < g`` and ``x > 1`` in grid units, up likewise,
  right / down by the same rule on the distance to the far border; ``g`` 0.5: 3 cells, 1.0: 5 cells),
  cell indices truncated then clamped to the grid;
* a prediction at a cell decodes as ``xy = (2 sigmoid(t_xy) - 0.5 + cell) * stride`` and
  ``wh = (2 sigmoid(t_wh))^2 * anchor`` (pixels);
* per image, the cost of box ``g`` for candidate ``c``: ``BCE(sqrt(sigmoid(cls) * sigmoid(obj)),
  one-hot)`` summed over the classes, plus ``3.0 * -log(IoU + 1e-8)``;
* box ``g`` takes its ``k`` cheapest candidates, ``k = max(1, int(sum of its 10 (or 20) largest
  IoUs))``; a candidate taken by several boxes keeps the box of lowest cost for it;
* loss per level: ``1 - CIoU`` averaged over the positives, objectness BCE on every cell against
  the CIoU clamped at 0 (0 off the positives), class BCE averaged over positives x classes (only
  with more than one class); level balance, gains, aux weight, x batch size.

Conventions of this project kept here (the package documents them): boxes in input pixels (the
official code scales by the image height, wrong for non-square inputs); ties in the cost broken by
column order (level, box, offset, anchor) with a stable sort; duplicate writes of one objectness
cell keep the max; the CIoU ``eps`` (1e-7) added to the heights, the union and the enclosing
diagonal. The assignment is computed in float32 (the official arithmetic: ``int()`` of the IoU sum
truncates a float32 sum), the loss in float64.
"""

from __future__ import annotations

import math

import torch

OFFSETS = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))
CIOU_EPS = 1e-7
LOG_EPS = 1e-8


# ---- geometry and losses, from their formulas ------------------------------------------------------
def corners(box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[..., 4]`` (cx, cy, w, h) -> x1, y1, x2, y2."""
    cx, cy, w, h = box.unbind(-1)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def box_iou(gts: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
    """IoU of every box ``gts [G, 4]`` with every box ``preds [C, 4]`` (both cx, cy, w, h) -> ``[G, C]``:
    intersection over (area + area - intersection), areas from the corners."""
    gx1, gy1, gx2, gy2 = (v[:, None] for v in corners(gts))
    px1, py1, px2, py2 = (v[None, :] for v in corners(preds))
    inter_w = (torch.minimum(gx2, px2) - torch.maximum(gx1, px1)).clamp(min=0)
    inter_h = (torch.minimum(gy2, py2) - torch.maximum(gy1, py1)).clamp(min=0)
    inter = inter_w * inter_h
    return inter / ((gx2 - gx1) * (gy2 - gy1) + (px2 - px1) * (py2 - py1) - inter)


def complete_iou(pred: torch.Tensor, target: torch.Tensor, eps: float = CIOU_EPS) -> torch.Tensor:
    """CIoU of matching boxes ``[N, 4]`` (cx, cy, w, h): ``IoU - rho^2 / c^2 - alpha v`` with
    ``v = 4 / pi^2 (atan(w_t / h_t) - atan(w_p / h_p))^2``, ``alpha = v / ((1 - IoU) + v)`` (no gradient)."""
    px1, py1, px2, py2 = corners(pred)
    tx1, ty1, tx2, ty2 = corners(target)
    inter = ((torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
             * (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0))
    pw, ph = px2 - px1, py2 - py1 + eps
    tw, th = tx2 - tx1, ty2 - ty1 + eps
    iou = inter / (pw * ph + tw * th - inter + eps)
    cw, ch = torch.maximum(px2, tx2) - torch.minimum(px1, tx1), torch.maximum(py2, ty2) - torch.minimum(py1, ty1)
    c2 = cw ** 2 + ch ** 2 + eps  # squared diagonal of the enclosing box
    rho2 = ((tx1 + tx2 - px1 - px2) ** 2 + (ty1 + ty2 - py1 - py2) ** 2) / 4  # squared centre distance
    v = 4 / math.pi ** 2 * (torch.atan(tw / th) - torch.atan(pw / ph)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def bce(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of probabilities ``p`` against ``t``, elementwise, logs clamped at -100
    (the official ``F.binary_cross_entropy``)."""
    return -(t * torch.log(p).clamp(min=-100) + (1 - t) * torch.log(1 - p).clamp(min=-100))


def bce_logits(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``sigmoid(x)`` against ``t``, elementwise, in the overflow-free form
    ``max(x, 0) - x t + log(1 + exp(-|x|))``."""
    return x.clamp(min=0) - x * t + torch.log1p(torch.exp(-x.abs()))


# ---- assignment --------------------------------------------------------------------------------------
def candidates(targets, grids, anchors, strides, offset, anchor_t):
    """Per level, a list of columns (b, a, gj, gi, slot): box ``slot`` of image ``b`` generated it.
    Loops over boxes, offsets and anchors, in that order; arithmetic in float32 (the official)."""
    slots = [int((targets[:i, 0] == targets[i, 0]).sum()) for i in range(len(targets))]
    out = []
    for lvl, ((h, w), s) in enumerate(zip(grids, strides)):
        cols = []
        for n in range(len(targets)):
            gxy = targets[n, 2:4] / s  # float32 grid units
            gwh = targets[n, 4:6] / s
            far = torch.tensor([w, h], dtype=torch.float32) - gxy
            frac, frac_far = (gxy % 1).tolist(), (far % 1).tolist()
            x, y = gxy.tolist()
            fx, fy = far.tolist()
            allowed = (True, frac[0] < offset and x > 1, frac[1] < offset and y > 1,
                       frac_far[0] < offset and fx > 1, frac_far[1] < offset and fy > 1)
            for o, (dx, dy) in enumerate(OFFSETS):
                if not allowed[o]:
                    continue
                shifted = gxy - torch.tensor([dx * offset, dy * offset], dtype=torch.float32)
                gi = min(max(int(shifted[0].item()), 0), w - 1)  # int(): truncation towards 0
                gj = min(max(int(shifted[1].item()), 0), h - 1)
                for a in range(anchors.shape[1]):
                    r = gwh / anchors[lvl, a]
                    if max(max(v, 1 / v) for v in r.tolist()) < anchor_t:
                        cols.append((int(targets[n, 0]), a, gj, gi, slots[n]))
        out.append(cols)
    return out


def class_cost(raw: torch.Tensor, classes: list[int], nc: int) -> torch.Tensor:
    """``[G, C]``: BCE of ``sqrt(sigmoid(cls) * sigmoid(obj))`` of every candidate ``raw [C, 5 + nc]``
    against the one-hot class of every box, summed over the classes (float64)."""
    raw = raw.double()
    y = (raw[:, 5:].sigmoid() * raw[:, 4:5].sigmoid()).sqrt()  # [C, nc]
    cost = torch.zeros(len(classes), len(raw), dtype=torch.float64)
    for g, cls in enumerate(classes):
        onehot = torch.zeros(nc, dtype=torch.float64)
        onehot[cls] = 1.0
        cost[g] = bce(y, onehot[None]).sum(-1)
    return cost


def assign(preds, targets, anchors, strides, offset, topk, anchor_t=4.0, iou_weight=3.0, cls_weight=1.0,
           cross_gt=True):
    """Positives per level: list of (b, a, gj, gi, slot)."""
    grids = [(p.shape[2], p.shape[3]) for p in preds]
    nc = preds[0].shape[-1] - 5
    cols = candidates(targets, grids, anchors, strides, offset, anchor_t)
    result = [[] for _ in preds]
    for b in range(preds[0].shape[0]):
        mine = targets[targets[:, 0] == b]
        if len(mine) == 0:
            continue
        raws, boxes, where = [], [], []
        for lvl, level_cols in enumerate(cols):
            for col in level_cols:
                if col[0] != b:
                    continue
                _, a, gj, gi, slot = col
                p = preds[lvl][b, a, gj, gi].detach().float()
                s = strides[lvl]
                xy = (p[:2].sigmoid() * 2 - 0.5 + torch.tensor([gi, gj], dtype=torch.float32)) * s
                wh = (p[2:4].sigmoid() * 2) ** 2 * anchors[lvl, a] * s
                raws.append(p)
                boxes.append(torch.cat((xy, wh)))
                where.append((lvl, a, gj, gi, slot))
        if not raws:
            continue
        iou = box_iou(mine[:, 2:6].float(), torch.stack(boxes))  # [G, C] float32
        cost = cls_weight * class_cost(torch.stack(raws), mine[:, 1].long().tolist(), nc) \
            + iou_weight * -torch.log(iou.double() + LOG_EPS)
        n_gt, n_col = iou.shape
        allowed = [[cross_gt or where[c][4] == g for c in range(n_col)] for g in range(n_gt)]
        matched: dict[int, list[int]] = {}  # column -> the boxes that took it
        costs = cost.tolist()
        for g in range(n_gt):
            own = [c for c in range(n_col) if allowed[g][c]]
            best_ious = torch.sort(iou[g, own], descending=True).values[:topk]  # float32, largest first
            k = max(1, int(best_ious.sum()))
            for c in sorted(own, key=lambda c: costs[g][c])[:k]:  # sorted() is stable: column order breaks ties
                matched.setdefault(c, []).append(g)
        for c in sorted(matched):
            boxes_of_c = matched[c]
            if len(boxes_of_c) > 1:  # the box of lowest cost for this column, among all boxes of the image
                g = min(range(n_gt), key=lambda g: costs[g][c])
            else:
                g = boxes_of_c[0]
            lvl, a, gj, gi, _ = where[c]
            result[lvl].append((b, a, gj, gi, g))
    return result


# ---- loss ----------------------------------------------------------------------------------------------
def _slot_rows(targets):
    rows, slots = {}, {}
    for i, b in enumerate(targets[:, 0].long().tolist()):
        slot = slots.get(b, 0)
        slots[b] = slot + 1
        rows[(b, slot)] = i
    return rows


def head_loss(preds, positives, targets, anchors, strides, nc, gains, balance, xy_scale=2.0, cap_fine=None,
              cp=1.0, cn=0.0):
    """(box, obj, cls) of one head, gains applied, float64; ``positives`` per level as :func:`assign`."""
    rows = _slot_rows(targets)
    lbox = lobj = lcls = torch.zeros((), dtype=torch.float64)
    for lvl, pos in enumerate(positives):
        p = preds[lvl].double()
        s = strides[lvl]
        tobj = torch.zeros(p.shape[:4], dtype=torch.float64)
        if pos:
            pred_boxes, target_boxes = [], []
            for b, a, gj, gi, slot in pos:
                t = targets[rows[(b, slot)]].double()
                target_boxes.append(torch.stack((t[2] / s - gi, t[3] / s - gj, t[4] / s, t[5] / s)))
                raw = p[b, a, gj, gi]
                xy = raw[:2].sigmoid() * xy_scale - (xy_scale - 1) / 2
                wh = (raw[2:4].sigmoid() * 2) ** 2 * anchors[lvl, a].double()
                pred_boxes.append(torch.cat((xy, wh)))
            tbox = torch.stack(target_boxes)
            iou = complete_iou(torch.stack(pred_boxes), tbox)
            lbox = lbox + (1 - iou).mean()
            for n, (b, a, gj, gi, slot) in enumerate(pos):
                value = iou[n].detach().clamp(min=0)
                if cap_fine is not None and (b, a, gj, gi) not in cap_fine[lvl]:  # coarse only: capped by distance
                    d = (tbox[n, :2] - 0.5).abs().max()
                    value = torch.minimum(value, (1.5 - d).clamp(0, 1))
                tobj[b, a, gj, gi] = torch.maximum(tobj[b, a, gj, gi], value)
            if nc > 1:
                cls_losses = []
                for b, a, gj, gi, slot in pos:
                    target = torch.full((nc,), cn, dtype=torch.float64)
                    target[int(targets[rows[(b, slot)], 1])] = cp
                    cls_losses.append(bce_logits(p[b, a, gj, gi, 5:], target))
                lcls = lcls + torch.stack(cls_losses).mean()
        lobj = lobj + bce_logits(p[..., 4], tobj).mean() * balance[lvl]
    return lbox * gains[0], lobj * gains[1], lcls * gains[2]


def loss(outputs, targets, anchors, strides, nc, strategy="coarse_to_fine", gains=(0.05, 0.7, 0.3), balance=None,
         coarse_bound="decoder", lead_rule=(0.5, 20), aux_rule=(1.0, 20), lead_only_rule=(0.5, 10), aux_weight=0.25,
         label_smoothing=0.0, cross_gt=True):
    """Total (x batch, float64) and positives, as the official losses compute them."""
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
