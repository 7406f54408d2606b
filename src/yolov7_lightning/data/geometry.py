"""Random affine/perspective warp with segment-aware box update and box-candidate filtering.

Hand-written: YOLOv7 warps the 2Hx2W mosaic canvas directly into the HxW output with one matrix
``M = T @ S @ R @ P @ C`` (output size != input size, optional projective term), which
``albumentations.Affine`` cannot express without warping the full canvas and cropping (4x the work)
and ``albumentations.Perspective`` has different semantics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

FILL = (114, 114, 114)


@dataclass(frozen=True)
class WarpParams:
    """The hyp values: degrees, translate (fraction), scale (gain around 1), shear (deg), perspective."""

    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    perspective: float = 0.0


def resample_segment(seg: np.ndarray, n: int = 1000) -> np.ndarray:
    """float32 [k, 2] closed polygon -> [n, 2] points evenly spaced along its outline."""
    closed = np.concatenate([seg, seg[:1]])
    seglen = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    cum = np.concatenate([[0], np.cumsum(seglen)])
    t = np.linspace(0, cum[-1], n, endpoint=False)
    return np.stack([np.interp(t, cum, closed[:, 0]), np.interp(t, cum, closed[:, 1])], 1).astype(np.float32)


def box_candidates(before: np.ndarray, after: np.ndarray, area_thr, wh_thr: float = 2, ar_thr: float = 20,
                   eps: float = 1e-16) -> np.ndarray:
    """bool [n]: keep boxes (xyxy [n,4]; ``before`` already scaled) with w,h > 2 px, area ratio >
    ``area_thr`` (scalar or [n]) and aspect ratio < 20."""
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def _matrix(rng: np.random.Generator, p: WarpParams, in_hw, out_hw) -> tuple[np.ndarray, float]:
    C = np.eye(3)
    C[0, 2], C[1, 2] = -in_hw[1] / 2, -in_hw[0] / 2
    P = np.eye(3)
    P[2, 0], P[2, 1] = rng.uniform(-p.perspective, p.perspective, 2)
    R = np.eye(3)
    a = rng.uniform(-p.degrees, p.degrees)
    s = rng.uniform(1 - p.scale, 1.1 + p.scale)
    R[:2] = cv2.getRotationMatrix2D(angle=a, center=(0, 0), scale=s)
    S = np.eye(3)
    S[0, 1], S[1, 0] = (math.tan(math.radians(v)) for v in rng.uniform(-p.shear, p.shear, 2))
    T = np.eye(3)
    T[0, 2] = rng.uniform(0.5 - p.translate, 0.5 + p.translate) * out_hw[1]
    T[1, 2] = rng.uniform(0.5 - p.translate, 0.5 + p.translate) * out_hw[0]
    return T @ S @ R @ P @ C, s


def _apply(M: np.ndarray, pts: np.ndarray, projective: bool) -> np.ndarray:
    xy = np.concatenate([pts, np.ones((len(pts), 1))], 1) @ M.T
    return xy[:, :2] / xy[:, 2:3] if projective else xy[:, :2]


def random_perspective(img: np.ndarray, boxes: np.ndarray, classes: np.ndarray, segments: list[np.ndarray],
                       rng: np.random.Generator, params: WarpParams, out_hw: tuple[int, int] | None = None):
    """Warp ``img`` (uint8 [h,w,3]) into ``out_hw`` (default: same size) and its labels.

    boxes xyxy px [n,4], classes [n], one polygon per box (``[0,2]`` = none). A box with a polygon
    takes the extent of its warped outline points inside the image (area threshold 0.01), a box
    without one the hull of its warped corners (0.10). Returns (img, boxes, classes) filtered.
    """
    in_hw = img.shape[:2]
    out_hw = tuple(out_hw or in_hw)
    M, s = _matrix(rng, params, in_hw, out_hw)
    projective = params.perspective != 0
    if projective:
        img = cv2.warpPerspective(img, M, (out_hw[1], out_hw[0]), borderValue=FILL)
    elif out_hw != in_hw or not np.allclose(M, np.eye(3)):
        img = cv2.warpAffine(img, M[:2], (out_hw[1], out_hw[0]), borderValue=FILL)
    n = len(boxes)
    if n == 0:
        return img, boxes.reshape(0, 4).astype(np.float32), classes
    new = np.zeros((n, 4), np.float32)
    has_seg = np.array([len(sg) >= 3 for sg in segments] if len(segments) == n else [False] * n)
    H, W = out_hw
    for i in range(n):
        if has_seg[i]:
            xy = _apply(M, resample_segment(segments[i]), projective)
            inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] <= W) & (xy[:, 1] <= H)
            xy = xy[inside]
            if len(xy):
                new[i] = (*xy.min(0), *xy.max(0))
        else:
            x1, y1, x2, y2 = boxes[i]
            xy = _apply(M, np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64), projective)
            new[i] = (*xy.min(0), *xy.max(0))
    new[:, [0, 2]] = new[:, [0, 2]].clip(0, W)
    new[:, [1, 3]] = new[:, [1, 3]].clip(0, H)
    keep = box_candidates(boxes * s, new, np.where(has_seg, 0.01, 0.10))
    return img, new[keep], classes[keep]
