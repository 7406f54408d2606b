"""Autoanchor: how well the anchors fit a dataset's boxes, and new anchors when they do not.

The facts follow the official YOLOv7 implementation (``utils/autoanchor.py``: ``check_anchors``,
``kmean_anchors``), vectorised and seeded:

* Boxes are measured at the training size: every image is scaled so its long side is ``img_size``.
* A box fits an anchor when ``min(w/a_w, a_w/w, h/a_h, a_h/h) > 1/anchor_t``. **Best possible
  recall** (BPR) is the share of boxes that fit at least one anchor; **anchors per target** the
  mean number of anchors each box fits. Both are measured with every box scaled by U(0.9, 1.1)
  (one draw per image, the official jitter).
* Below a BPR of 0.98, new anchors: k-means on the box sizes (boxes with a side of at least 2 px,
  whitened by the std), then a genetic evolution (1,000 generations; each generation mutates
  every anchor coordinate with probability 0.9 by ``1 + U * N(0, 1) * 0.1``, clipped to
  [0.3, 3.0], and keeps the mutant when the fitness ``mean(best * (best > 1/anchor_t))`` rises).
  The new anchors replace the old ones only when their BPR is higher.
* Anchors are sorted by area, the smallest three to the smallest stride (the order the official
  ``check_anchor_order`` enforces).

Everything runs on a seeded ``numpy.random.Generator`` (the official code uses the global
generators); the metric is computed in log space (``exp(-max|log r|)`` equals the official
``min(r, 1/r)`` over both sides), so 1,000 generations over 100k boxes take seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from ..errors import ConfigError, UserError

log = logging.getLogger(__name__)

BPR_TARGET = 0.98
MODES = ("auto", "keep")


def label_wh(sizes_hw: np.ndarray, boxes: Sequence[np.ndarray], img_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Box (w, h) in pixels at the training size, and the image each box belongs to.

    ``sizes_hw [n, 2]`` original image (height, width); ``boxes`` one xyxy ``[k, 4]`` array per image
    in original pixels. Each image is scaled so its long side is ``img_size`` (the official rule)."""
    wh, owner = [], []
    for i, ((h, w), b) in enumerate(zip(sizes_hw, boxes)):
        b = np.asarray(b, np.float64).reshape(-1, 4)
        if len(b):
            wh.append((b[:, 2:4] - b[:, 0:2]) * (img_size / max(int(h), int(w))))
            owner.append(np.full(len(b), i))
    if not wh:
        return np.zeros((0, 2)), np.zeros(0, np.int64)
    return np.concatenate(wh), np.concatenate(owner)


def index_wh(index, img_size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`label_wh` of a :class:`~yolov7_lightning.data.records.DatasetIndex`."""
    return label_wh(index.sizes_hw(), [r.boxes for r in index.records], img_size)


@contextmanager
def _one_thread():
    """The metric's tensors are small (100k elements): threads only add synchronisation (10x slower on
    a busy machine). The previous setting is restored."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


class _LogBoxes:
    """Boxes as two contiguous float32 columns of log(w), log(h): the metric below runs one anchor at
    a time over them (cache-friendly: about 3 ms per evaluation of 9 anchors on 100k boxes)."""

    def __init__(self, wh: np.ndarray):
        lw = torch.from_numpy(np.log(np.maximum(np.asarray(wh, np.float64), 1e-6))).float()
        self.x, self.y, self.n = lw[:, 0].contiguous(), lw[:, 1].contiguous(), len(lw)

    def distances(self, anchors: np.ndarray):
        """Per anchor, ``max(|log w/a_w|, |log h/a_h|)`` ``[n]``: ``exp(-d)`` is the official
        ``min over sides of min(r, 1/r)``."""
        for aw, ah in np.log(np.asarray(anchors, np.float64).reshape(-1, 2)):
            yield torch.maximum((self.x - float(aw)).abs_(), (self.y - float(ah)).abs_())

    def best(self, anchors: np.ndarray) -> torch.Tensor:
        """Per box, the official ``best`` ratio over the anchors ``[n]``."""
        d = None
        for e in self.distances(anchors):
            d = e if d is None else torch.minimum(d, e, out=d)
        return torch.exp(-d)


@_one_thread()
def fit_metrics(wh: np.ndarray, anchors: np.ndarray, anchor_t: float) -> tuple[float, float]:
    """(best possible recall, anchors per target) of boxes ``wh [n, 2]`` for ``anchors [k, 2]`` (px)."""
    if len(wh) == 0:
        return 1.0, 0.0
    boxes, limit = _LogBoxes(wh), float(np.log(anchor_t))  # exp(-d) > 1/anchor_t  <=>  d < log(anchor_t)
    fits = [(d < limit) for d in boxes.distances(anchors)]
    any_fit = torch.stack(fits).any(0)
    count = torch.stack(fits).sum(0, dtype=torch.float64)
    return float(any_fit.double().mean()), float(count.mean())


def jittered_wh(wh: np.ndarray, owner: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every image's boxes scaled by one U(0.9, 1.1) draw (the official augment of the BPR check)."""
    n_images = int(owner.max()) + 1 if len(owner) else 0
    scale = rng.uniform(0.9, 1.1, size=n_images)
    return wh * scale[owner, None]


def _kmeans(x: np.ndarray, n: int, rng: np.random.Generator, iters: int = 30) -> np.ndarray:
    """Plain Lloyd k-means (``n`` distinct starting points drawn from ``x``), ``iters`` rounds."""
    unique = np.unique(x, axis=0)
    if len(unique) < n:
        raise UserError(f"autoanchor: {len(unique)} distinct box sizes, fewer than the {n} anchors to fit")
    k = unique[rng.choice(len(unique), n, replace=False)].copy()
    xt = torch.from_numpy(x)
    for _ in range(iters):
        nearest = torch.cdist(xt, torch.from_numpy(k)).argmin(1).numpy()
        new = k.copy()
        for j in range(n):
            members = x[nearest == j]
            if len(members):
                new[j] = members.mean(0)
        if np.allclose(new, k):
            break
        k = new
    return k


@_one_thread()
def kmean_anchors(wh: np.ndarray, n: int, anchor_t: float, gen: int = 1000, seed: int = 0) -> np.ndarray:
    """``n`` anchors ``[n, 2]`` (px, sorted by area) for boxes ``wh [m, 2]`` (px at the training size):
    k-means on the boxes with a side >= 2 px, then ``gen`` generations of the official evolution."""
    rng = np.random.default_rng(seed)
    thr = 1 / anchor_t
    tiny = int((wh < 3.0).any(1).sum())
    if tiny:
        log.warning("autoanchor: %d of %d boxes are smaller than 3 px at the training size", tiny, len(wh))
    kept = wh[(wh >= 2.0).any(1)]
    if len(kept) < n:
        raise UserError(f"autoanchor: {len(kept)} boxes with a side >= 2 px, fewer than the {n} anchors to fit")
    s = kept.std(0)
    s = np.where(s > 0, s, 1.0)
    k = _kmeans(kept / s, n, rng) * s
    boxes = _LogBoxes(kept)

    def fitness(anchors: np.ndarray) -> float:
        best = boxes.best(anchors)
        return float((best * (best > thr)).mean(dtype=torch.float64))

    f, shape, mp, sigma = fitness(k), k.shape, 0.9, 0.1
    for _ in range(gen):
        v = np.ones(shape)
        while (v == 1).all():  # mutate until something changes
            v = ((rng.random(shape) < mp) * rng.random() * rng.standard_normal(shape) * sigma + 1).clip(0.3, 3.0)
        kg = (k * v).clip(min=2.0)
        fg = fitness(kg)
        if fg > f:
            f, k = fg, kg
    return k[np.argsort(k.prod(1))]


@dataclass
class AnchorFit:
    """Before/after figures of an autoanchor check (anchors in pixels, one ``[A, 2]`` list per level)."""

    img_size: int
    anchor_t: float
    num_boxes: int
    num_images: int
    bpr_before: float
    anchors_per_target_before: float
    anchors_before: list
    bpr_after: float
    anchors_per_target_after: float
    anchors_after: list
    changed: bool
    mode: str
    reason: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def summary(self) -> str:
        head = (f"autoanchor ({self.mode}): {self.num_boxes} boxes at {self.img_size} px, anchor_t {self.anchor_t:g}: "
                f"BPR {self.bpr_before:.4f}, {self.anchors_per_target_before:.2f} anchors/target")
        if not self.changed:
            return f"{head}; anchors kept ({self.reason})"
        return (f"{head} -> BPR {self.bpr_after:.4f}, {self.anchors_per_target_after:.2f} anchors/target with new "
                f"anchors {self.anchors_after} ({self.reason})")


def _levels(anchors: np.ndarray, nl: int) -> list:
    return np.round(np.asarray(anchors, np.float64).reshape(nl, -1, 2), 2).tolist()


def order_by_stride(anchors: np.ndarray, nl: int) -> np.ndarray:
    """Anchors ``[nl * A, 2]`` with area growing with the stride: kept when per-level mean areas
    grow, reversed when they shrink (the official ``check_anchor_order``); any other order is an error."""
    a = np.asarray(anchors, np.float64).reshape(nl, -1, 2)
    area = a.prod(-1).mean(1)
    if np.all(np.diff(area) >= 0):
        return a.reshape(-1, 2)
    if np.all(np.diff(area) <= 0):
        log.info("anchors: order reversed to follow the strides (smallest anchors at the smallest stride)")
        return a[::-1].reshape(-1, 2)
    raise ConfigError(f"anchors: per-level mean areas {area.round(1).tolist()} neither grow nor shrink with the "
                      "strides; list the levels from the smallest stride (P3) up")


def explicit_anchors(spec, nl: int, na: int) -> np.ndarray:
    """Validate an explicit ``anchors`` list (official YAML form ``[[w,h, w,h, w,h], ...]`` per level,
    pixels) into ``[nl * na, 2]``."""
    try:
        a = np.asarray([list(map(float, level)) for level in spec], np.float64)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"anchors: expected auto, keep or a list of {nl} levels of {2 * na} numbers "
                          f"(w,h pairs in pixels), got {spec!r}") from e
    if a.shape != (nl, 2 * na):
        raise ConfigError(f"anchors: expected {nl} levels of {2 * na} numbers (w,h pairs in pixels), got shape "
                          f"{list(a.shape)}")
    if not np.all(np.isfinite(a)) or (a <= 0).any():
        raise ConfigError(f"anchors: every anchor side must be a positive number, got {a.tolist()}")
    return order_by_stride(a.reshape(-1, 2), nl)


def check_anchors(wh: np.ndarray, owner: np.ndarray, anchors: np.ndarray, nl: int, img_size: int,
                  anchor_t: float = 4.0, gen: int = 1000, seed: int = 0, mode: str = "auto") -> AnchorFit:
    """The official check: BPR (jittered) of ``anchors [nl*A, 2]`` (px); when below 0.98 and ``mode``
    is ``auto``, k-means + evolution, adopted only if the BPR rises. Pure: returns the figures."""
    if mode not in MODES:
        raise ConfigError(f"autoanchor mode {mode!r}; valid: {', '.join(MODES)}")
    anchors = np.asarray(anchors, np.float64).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    jwh = jittered_wh(wh, owner, rng)
    bpr, aat = fit_metrics(jwh, anchors, anchor_t)
    fit = {"img_size": int(img_size), "anchor_t": float(anchor_t), "num_boxes": len(wh),
           "num_images": len(np.unique(owner)), "bpr_before": bpr, "anchors_per_target_before": aat,
           "anchors_before": _levels(anchors, nl), "mode": mode}
    kept = {"bpr_after": bpr, "anchors_per_target_after": aat, "anchors_after": _levels(anchors, nl), "changed": False}
    if len(wh) == 0:
        return AnchorFit(**fit, **kept, reason="no training boxes")
    if mode == "keep":
        return AnchorFit(**fit, **kept, reason="anchors: keep")
    if bpr >= BPR_TARGET:
        return AnchorFit(**fit, **kept, reason=f"BPR >= {BPR_TARGET}")
    new = kmean_anchors(wh, len(anchors), anchor_t, gen=gen, seed=seed)
    new_bpr, new_aat = fit_metrics(jwh, new, anchor_t)
    if new_bpr <= bpr:
        return AnchorFit(**fit, **kept, reason=f"new anchors' BPR {new_bpr:.4f} is not higher")
    return AnchorFit(**fit, bpr_after=new_bpr, anchors_per_target_after=new_aat, anchors_after=_levels(new, nl),
                     changed=True, reason="k-means + evolution")


def set_anchors(detect, anchors_px: np.ndarray | Sequence) -> None:
    """Write pixel anchors ``[nl*A, 2]`` into a detect head's ``anchor_grid`` (px) and ``anchors`` (grid units)."""
    with torch.no_grad():
        a = torch.as_tensor(np.asarray(anchors_px, np.float64), dtype=detect.anchor_grid.dtype,
                            device=detect.anchor_grid.device).reshape(detect.nl, detect.na, 2)
        stride = torch.tensor(detect.strides, dtype=a.dtype, device=a.device).view(-1, 1, 1)
        detect.anchor_grid.copy_(a.view_as(detect.anchor_grid))
        detect.anchors.copy_(a / stride)


def model_anchors(detect) -> np.ndarray:
    """A detect head's anchors in pixels, ``[nl*A, 2]``."""
    return detect.anchor_grid.detach().cpu().double().reshape(-1, 2).numpy()


def apply_anchor_config(model, spec, wh: np.ndarray, owner: np.ndarray, img_size: int, anchor_t: float = 4.0,
                        seed: int = 0, gen: int = 1000) -> AnchorFit:
    """``anchors: auto | keep | [explicit list]`` on ``model`` (a :class:`~yolov7_lightning.models.YOLOv7`)
    for the training boxes ``wh``; the anchors are changed in place, and the figures returned and logged."""
    detect = model.detect
    if isinstance(spec, str) or spec is None:
        mode = "auto" if spec is None else str(spec)
        if mode not in MODES:
            raise ConfigError(f"anchors: {spec!r}; valid: auto, keep or an explicit list of {detect.nl} levels")
        fit = check_anchors(wh, owner, model_anchors(detect), detect.nl, img_size, anchor_t, gen, seed, mode)
    else:
        new = explicit_anchors(spec, detect.nl, detect.na)
        fit = check_anchors(wh, owner, model_anchors(detect), detect.nl, img_size, anchor_t, gen, seed, "keep")
        jwh = jittered_wh(wh, owner, np.random.default_rng(seed))  # the same draws as the check
        fit.bpr_after, fit.anchors_per_target_after = fit_metrics(jwh, new, anchor_t)
        fit.anchors_after = _levels(new, detect.nl)
        fit.mode, fit.reason, fit.changed = "explicit", "anchors from the config", True
    if fit.changed:
        set_anchors(detect, np.asarray(fit.anchors_after).reshape(-1, 2))
    log.info(fit.summary())
    return fit
