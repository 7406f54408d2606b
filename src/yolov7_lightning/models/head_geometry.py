"""The anchor geometry of a detect head: strides, anchors and the one box decoder.

Per level ``s`` (stride) and anchor ``a``, the raw outputs ``t`` of a cell ``(gi, gj)`` decode as

    xy = (2 sigmoid(t_xy) - 0.5 + (gi, gj)) * s        wh = (2 sigmoid(t_wh))^2 * a

:func:`cell_xy` and :func:`cell_wh` are that formula in grid units of the level (xy from the cell's
corner); :class:`HeadGeometry` applies it to whole maps (``IDetect.decode``: inference, export) and
at candidate cells (the assigner, in pixels; the loss, in grid units), and converts boxes between
pixels and the grid units of a candidate's cell.

:class:`HeadGeometry` reads the anchors from the head's buffers at every use (``anchors`` in grid
units, ``anchor_grid`` in pixels: official weights and autoanchor overwrite them after construction,
``.to(device)`` replaces them), so it is built once and handed to the assigner and the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..assign.candidates import Candidates


def cell_xy(sig: torch.Tensor, scale: float = 2) -> torch.Tensor:
    """Box centre in cells from the cell's corner: ``scale * sigmoid - (scale - 1) / 2``; the official
    ``scale`` 2 gives the range (-0.5, 1.5), 3 (the aux head under ``coarse_bound=none``) (-1, 2)."""
    return sig * scale - (scale - 1) / 2


def cell_wh(sig: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """Box size ``(2 sigmoid)^2 * anchor``, in the anchor's units (up to 4 anchors)."""
    return (sig * 2) ** 2 * anchor


class _AnchorTable:
    """Anchors without a network (tests, benchmarks): the attributes the geometry reads off a head."""

    def __init__(self, anchors: torch.Tensor, strides: Sequence[int], aux_head: bool | None = None):
        self.aux_head = aux_head
        self.strides = tuple(int(s) for s in strides)
        self.anchors = anchors
        stride = torch.tensor(self.strides, dtype=anchors.dtype, device=anchors.device).view(-1, 1, 1)
        self.anchor_grid = (anchors * stride).view(anchors.shape[0], 1, anchors.shape[1], 1, 1, 2)


class HeadGeometry:
    """Strides, anchors and decoding of the head ``source`` (an ``IDetect``, or anything with
    ``strides``, ``anchors [L, A, 2]`` grid units and ``anchor_grid [L, 1, A, 1, 1, 2]`` pixels).

    Not a module: it holds no tensors of its own (no state-dict keys); ``IDetect.geometry`` gives it."""

    def __init__(self, source: Any):
        self.source = source

    @classmethod
    def from_anchors(cls, anchors: torch.Tensor, strides: Sequence[int], aux_head: bool | None = None) -> HeadGeometry:
        """A geometry without a network: ``anchors [L, A, 2]`` in grid units of their level;
        ``aux_head``: whether the heads it decodes include the aux head (None: not said)."""
        return cls(_AnchorTable(anchors, strides, aux_head))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeadGeometry) and other.source is self.source

    def __hash__(self) -> int:
        return id(self.source)

    def __repr__(self) -> str:
        return f"HeadGeometry(strides={self.strides}, anchors={self.nl}x{self.na})"

    @property
    def aux_head(self) -> bool | None:
        """Whether the head has the auxiliary head (``IAuxDetect``'s ``m2``); None: a geometry without a
        network that was not told (:meth:`from_anchors`)."""
        if isinstance(self.source, _AnchorTable):
            return self.source.aux_head
        return getattr(self.source, "m2", None) is not None

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(self.source.strides)

    @property
    def anchors(self) -> torch.Tensor:
        """``[L, A, 2]`` in grid units of each level (the head's live buffer)."""
        return self.source.anchors

    @property
    def anchor_grid(self) -> torch.Tensor:
        """``[L, 1, A, 1, 1, 2]`` in pixels (the head's live buffer)."""
        return self.source.anchor_grid

    @property
    def nl(self) -> int:
        """Number of levels."""
        return self.anchors.shape[0]

    @property
    def na(self) -> int:
        """Anchors per level."""
        return self.anchors.shape[1]

    # ---- whole maps ------------------------------------------------------------------------------
    def decode(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Raw maps ``[B, A, H, W, 5 + nc]`` per level -> ``[B, N, 5 + nc]``: cx, cy, w, h in input
        pixels, then sigmoid objectness and classes; computed in the maps' dtype."""
        z = []
        for i, p in enumerate(maps):
            b, _, h, w, no = p.shape
            y = p.sigmoid()
            gy, gx = torch.meshgrid(torch.arange(h, device=p.device), torch.arange(w, device=p.device), indexing="ij")
            grid = torch.stack((gx, gy), -1).view(1, 1, h, w, 2).to(p.dtype)
            xy = (cell_xy(y[..., :2]) + grid) * self.strides[i]
            wh = cell_wh(y[..., 2:4], self.anchor_grid[i].to(p.dtype))
            z.append(torch.cat((xy, wh, y[..., 4:]), -1).view(b, -1, no))
        return torch.cat(z, 1)

    # ---- candidate cells -------------------------------------------------------------------------
    def cell_strides(self, cands: Candidates, dtype: torch.dtype) -> torch.Tensor:
        """``[B, C, 1]``: the stride of each column's level."""
        out = torch.zeros(cands.level.shape, dtype=dtype, device=cands.level.device)
        for lvl, s in enumerate(self.strides):  # Python numbers: no host-to-device copy (a sync on a GPU)
            out = torch.where(cands.level == lvl, s, out)
        return out[..., None]

    def decode_cells(self, raw: torch.Tensor, cands: Candidates, xy_scale: float = 2) -> torch.Tensor:
        """Raw predictions ``[B, C, 5 + nc]`` at the columns -> boxes ``[B, C, 4]`` in grid units of
        their level: xy from the column's cell corner (:func:`cell_xy` with ``xy_scale``), wh."""
        xy = cell_xy(raw[..., :2].sigmoid(), xy_scale)
        wh = cell_wh(raw[..., 2:4].sigmoid(), self.anchors[cands.level, cands.anchor])
        return torch.cat((xy, wh), -1)

    def to_pixels(self, boxes: torch.Tensor, cands: Candidates) -> torch.Tensor:
        """Boxes ``[B, C, 4]`` in grid units of each column's cell -> xywh input pixels."""
        stride = self.cell_strides(cands, boxes.dtype)
        return torch.cat(((boxes[..., :2] + cands.cell(boxes.dtype)) * stride, boxes[..., 2:4] * stride), -1)

    def to_cells(self, boxes: torch.Tensor, cands: Candidates) -> torch.Tensor:
        """xywh input pixels ``[B, C, 4]`` -> grid units of each column's level, xy from its cell's corner."""
        scaled = boxes / self.cell_strides(cands, boxes.dtype)
        return torch.cat((scaled[..., :2] - cands.cell(boxes.dtype), scaled[..., 2:]), -1)

    def decode_candidates(self, raw: torch.Tensor, cands: Candidates) -> torch.Tensor:
        """Raw predictions at the columns -> xywh boxes ``[B, C, 4]`` in input pixels."""
        return self.to_pixels(self.decode_cells(raw, cands), cands)
