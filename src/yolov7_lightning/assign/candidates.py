"""Candidate cells: the 3-cell rule (offset 0.5) and the 5-cell rule (offset 1.0), per level.

For every ground-truth box and every anchor whose shape passes the ratio filter
(``max(w/a_w, a_w/w, h/a_h, a_h/h) < anchor_t``), the candidates are the box-centre cell plus
the neighbour cells towards which the centre leans: left if ``frac(x) < offset`` and ``x > 1``
(grid units), up if ``frac(y) < offset`` and ``y > 1``, right / down by the same rule on the
distance to the far border. With offset 0.5 that is at most 3 cells, with offset 1.0 always the
centre and its 4 neighbours away from the border. Cell indices are clamped to the grid.

Candidates are built densely (every box x offset x anchor, with a validity mask), then packed per
image so that only valid columns remain (padded to the largest count, ``K``); columns keep the
order (level, box, offset, anchor). Packing costs one host synchronisation (the size ``K``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .targets import PaddedTargets

OFFSETS = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))


class Candidates(NamedTuple):
    """``K`` packed columns per image, all ``[B, K]``: ``gt`` slot of the box that generated the
    column, ``anchor``, ``level``, cell ``gi``/``gj``, ``valid``, and ``flat``, the index into its
    level's flattened ``[B * A * H * W]`` prediction map."""

    gt: torch.Tensor
    anchor: torch.Tensor
    level: torch.Tensor
    gi: torch.Tensor
    gj: torch.Tensor
    valid: torch.Tensor
    flat: torch.Tensor
    levels: int

    def on_level(self, lvl: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(on [B, K], flat [B, K])``: the columns of level ``lvl`` and their map index (0 elsewhere)."""
        on = self.level == lvl
        return on, torch.where(on, self.flat, torch.zeros_like(self.flat))

    def gather(self, preds: list[torch.Tensor]) -> torch.Tensor:
        """The predictions ``[B, A, H, W, N]`` of every level at the columns: ``[B, K, N]``."""
        out = None
        for lvl, p in enumerate(preds):
            on, flat = self.on_level(lvl)
            values = p.reshape(-1, p.shape[-1])[flat]
            out = values if out is None else torch.where(on[..., None], values, out)
        return out

    def cell(self, dtype: torch.dtype) -> torch.Tensor:
        """``[B, K, 2]``: the column's cell ``(gi, gj)`` as ``dtype``."""
        return torch.stack((self.gi, self.gj), -1).to(dtype)


def _pack(fields: dict[str, torch.Tensor], valid: torch.Tensor) -> dict[str, torch.Tensor]:
    """Keep the valid columns of every image, in order, padded to the largest count."""
    counts = valid.sum(1)
    k = int(counts.max()) if valid.numel() else 0  # synchronisation: the packed width
    slot = torch.where(valid, torch.cumsum(valid, 1) - 1, torch.full_like(counts[:, None], k))
    out = {}
    for name, t in fields.items():
        packed = torch.zeros(valid.shape[0], k + 1, dtype=t.dtype, device=t.device)
        out[name] = packed.scatter_(1, slot, t)[:, :k]
    out["valid"] = torch.arange(k, device=valid.device)[None, :] < counts[:, None]
    return out


def find_candidates(targets: PaddedTargets, grids: list[tuple[int, int]], anchors: torch.Tensor,
                    strides: list[int], offset: float, anchor_t: float) -> Candidates:
    """Candidate columns for all levels. ``grids``: (H, W) per level; ``anchors [L, A, 2]`` in
    grid units of their level; ``offset`` 0.5 (3-cell rule) or 1.0 (5-cell rule)."""
    b_, g_ = targets.valid.shape
    na = anchors.shape[1]
    device = targets.boxes.device
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("gt", "anchor", "level", "gi", "gj", "valid", "flat")}
    for lvl, ((h, w), s) in enumerate(zip(grids, strides)):
        gxy = targets.boxes[..., :2] / s  # [B, G, 2] grid units
        gwh = targets.boxes[..., 2:4] / s
        r = gwh[:, :, None, :] / anchors[lvl][None, None]  # [B, G, A, 2]
        shape_ok = torch.maximum(r, 1 / r).amax(-1) < anchor_t  # [B, G, A]
        far = torch.stack((w - gxy[..., 0], h - gxy[..., 1]), -1)  # Python numbers: no host-to-device copy
        near_ok = (gxy % 1 < offset) & (gxy > 1)
        far_ok = (far % 1 < offset) & (far > 1)
        offset_ok = torch.stack((torch.ones_like(near_ok[..., 0]), near_ok[..., 0], near_ok[..., 1],
                                 far_ok[..., 0], far_ok[..., 1]), -1)  # [B, G, 5]
        cell = torch.stack([torch.stack((gxy[..., 0] - dx * offset, gxy[..., 1] - dy * offset), -1)
                            for dx, dy in OFFSETS], 2).long()  # [B, G, 5, 2]; truncation, as the official .long()
        shape = (b_, g_, 5, na)
        gi = cell[..., 0].clamp(0, w - 1)[..., None].expand(shape)
        gj = cell[..., 1].clamp(0, h - 1)[..., None].expand(shape)
        a = torch.arange(na, device=device).view(1, 1, 1, na).expand(shape)
        bidx = torch.arange(b_, device=device).view(b_, 1, 1, 1)
        fields = {
            "gt": torch.arange(g_, device=device).view(1, g_, 1, 1).expand(shape),
            "anchor": a, "level": torch.full(shape, lvl, dtype=torch.long, device=device), "gi": gi, "gj": gj,
            "valid": targets.valid[:, :, None, None] & offset_ok[..., None] & shape_ok[:, :, None, :],
            "flat": ((bidx * na + a) * h + gj) * w + gi,
        }
        for key, t in fields.items():
            parts[key].append(t.reshape(b_, -1))
    cat = {k: torch.cat(v, -1) for k, v in parts.items()}
    valid = cat.pop("valid")
    packed = _pack(cat, valid)
    return Candidates(packed["gt"], packed["anchor"], packed["level"], packed["gi"], packed["gj"], packed["valid"],
                      packed["flat"], len(grids))
