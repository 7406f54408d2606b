"""Self-checks of an export: prediction differences and detection matching against tolerances.

Every comparison is recorded in the report as ``{"boxes_px": max abs diff, "scores": max abs diff,
"passed": bool, ...}``; :func:`raise_on_failure` raises :class:`ExportCheckError` naming every
check outside its tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch


class ExportCheckError(RuntimeError):
    """An exported model disagrees with the PyTorch model beyond the tolerances."""


@dataclass(frozen=True)
class Tolerances:
    """Max abs differences allowed (fp32): box coordinates in input pixels, and scores."""

    box_px: float = 1e-3
    score: float = 1e-4

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def prediction_diff(ref: torch.Tensor, got: torch.Tensor, tol: Tolerances) -> dict[str, Any]:
    """Decoded predictions ``[B, N, 5 + nc]`` vs ``[B, N, 5 + nc]``: boxes (cols 0-3, px) and scores."""
    ref, got = torch.as_tensor(ref).float(), torch.as_tensor(got).float()
    if ref.shape != got.shape:
        return {"boxes_px": None, "scores": None, "passed": False,
                "error": f"shape {tuple(got.shape)} != reference {tuple(ref.shape)}"}
    d = (ref - got).abs()
    boxes = float(d[..., :4].max()) if d.numel() else 0.0
    scores = float(d[..., 4:].max()) if d.numel() else 0.0
    finite = bool(torch.isfinite(got).all())
    return {"boxes_px": boxes, "scores": scores, "passed": finite and boxes <= tol.box_px and scores <= tol.score}


def match_detections(ref: list[torch.Tensor], got: list[torch.Tensor], tol: Tolerances, max_det: int,
                     conf_thres: float) -> dict[str, Any]:
    """Per-image detections ``[n, 6]`` (x1, y1, x2, y2, score, class) of a reference NMS vs an exported
    one, matched one-to-one within an image and class (greedy, highest reference score first, each to
    the closest box within the tolerances). A detection left unmatched is *explained* only when its
    score is within the score tolerance of a decision boundary: ``conf_thres``, or the image's lowest
    kept score when ``max_det`` truncated it (near-ties there may legitimately go either way)."""
    if len(ref) != len(got):
        return {"passed": False, "error": f"{len(got)} images != reference {len(ref)}"}
    box_max = score_max = 0.0
    matched = unexplained = unmatched = 0
    for r, g in zip(ref, got):
        r, g = torch.as_tensor(r).float(), torch.as_tensor(g).float()
        used = torch.zeros(len(g), dtype=torch.bool)
        left_r: list[float] = []
        for i in torch.argsort(r[:, 4], descending=True).tolist():
            cand = (~used) & (g[:, 5] == r[i, 5])
            if cand.any():
                db = (g[:, :4] - r[i, :4]).abs().amax(1)
                ds = (g[:, 4] - r[i, 4]).abs()
                ok = cand & (db <= tol.box_px) & (ds <= tol.score)
                if ok.any():
                    j = int(torch.where(ok, db, torch.full_like(db, float("inf"))).argmin())
                    used[j] = True
                    matched += 1
                    box_max, score_max = max(box_max, float(db[j])), max(score_max, float(ds[j]))
                    continue
            left_r.append(float(r[i, 4]))
        left = left_r + g[~used, 4].tolist()
        unmatched += len(left)
        cut_r = float(r[:, 4].min()) if len(r) >= max_det else conf_thres
        cut_g = float(g[:, 4].min()) if len(g) >= max_det else conf_thres
        for s in left:
            near = min(abs(s - conf_thres), abs(s - cut_r), abs(s - cut_g))
            unexplained += near > tol.score
    return {"boxes_px": box_max, "scores": score_max, "matched": matched, "unmatched": unmatched,
            "unexplained": unexplained, "reference_detections": sum(len(r) for r in ref),
            "passed": unexplained == 0}


def failures(report: dict[str, Any]) -> list[str]:
    """Names and values of the failed checks of a report."""
    return [f"{name}: {check}" for name, check in report.get("checks", {}).items()
            if isinstance(check, dict) and not check.get("passed", True)]


def raise_on_failure(report: dict[str, Any], where: str = "") -> None:
    failed = failures(report)
    if failed:
        tol = report.get("tolerances", {})
        raise ExportCheckError(f"export self-check failed{' (' + where + ')' if where else ''}; tolerances "
                               f"{tol}: " + "; ".join(failed))
