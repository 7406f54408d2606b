"""Self-checks of an export: model outputs against a tolerance, NMS outputs exactly.

Two kinds of comparison, never mixed:

- :func:`prediction_diff`: decoded predictions (model outputs) of two implementations of the same
  network on the same images, within :class:`Tolerances`. The box tolerance grows with the box:
  ``box_px + box_rel * (larger side of the reference box)`` per coordinate, because the decode
  ``(2 * sigmoid)^2 * anchor`` turns a fixed logit error into a box error proportional to the box.
- :func:`compare_detections`: two NMS implementations on *identical* predictions: the detections
  must be the same rows, bit for bit; the only freedom is which of several detections whose scores
  tie exactly at the ``max_det`` cut is kept. A comparison with no detection on either side proves
  nothing: its ``status`` is ``empty`` and ``passed`` is ``None`` (neither passed nor failed).

Every check is recorded in the report with the inputs it used (``inputs``) and the tolerance it
applied (``tolerance``); :func:`raise_on_failure` raises :class:`ExportCheckError` naming every
check that failed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import torch


EMPTY = "empty"  # the status of a detection comparison with no detection on either side


class ExportCheckError(RuntimeError):
    """An exported model disagrees with the PyTorch model beyond the tolerances."""


@dataclass(frozen=True)
class Tolerances:
    """Differences allowed between model outputs (defaults: fp32): a box coordinate may differ by
    ``box_px`` (input pixels) plus ``box_rel`` times the larger side of its box plus ``coord_rel``
    times its own magnitude (the rounding of a coordinate: matters for fp16, whose spacing is 0.5 px
    between 512 and 1024); a score by ``score``."""

    box_px: float = 1e-3
    box_rel: float = 2e-5
    score: float = 1e-4
    coord_rel: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# fp16 graphs vs the fp32 PyTorch model: fp16 has 11 significant bits (relative spacing 2^-10 ~ 1e-3,
# 4.9e-4 just below 1.0, where saturated scores sit), and a network's error is several of them.
FP16_TOLERANCES = Tolerances(box_px=2e-2, box_rel=4e-3, score=4e-3, coord_rel=2e-3)


def prediction_diff(ref: torch.Tensor, got: torch.Tensor, tol: Tolerances, inputs: str = "") -> dict[str, Any]:
    """Decoded predictions ``[B, N, 5 + nc]`` vs ``[B, N, 5 + nc]``: boxes (cols 0-3, px) and scores.

    Records ``boxes_px`` (max abs difference), ``boxes_vs_tolerance`` (max difference over its allowance: <= 1 passes) with
    the worst box (``worst_box``), and ``scores`` (max abs difference)."""
    ref, got = torch.as_tensor(ref).float(), torch.as_tensor(got).float()
    out: dict[str, Any] = {"inputs": inputs, "tolerance": tol.as_dict()}
    if ref.shape != got.shape:
        return {**out, "boxes_px": None, "scores": None, "passed": False,
                "error": f"shape {tuple(got.shape)} != reference {tuple(ref.shape)}"}
    if not ref.numel():
        return {**out, "boxes_px": 0.0, "scores": 0.0, "passed": True}
    d = (ref.double() - got.double()).abs()
    db = d[..., :4]
    size = ref[..., 2:4].double().abs().amax(-1, keepdim=True).expand_as(db)  # larger side of the box
    allowed = tol.box_px + tol.box_rel * size + tol.coord_rel * ref[..., :4].double().abs()
    ratio = db / allowed
    i = int(ratio.argmax())
    worst = {"diff_px": float(db.flatten()[i]), "box_size_px": float(size.flatten()[i]),
             "allowed_px": float(allowed.flatten()[i])}
    scores = float(d[..., 4:].max())
    finite = bool(torch.isfinite(got).all())
    ok = finite and float(ratio.max()) <= 1 and scores <= tol.score
    return {**out, "boxes_px": float(db.max()), "boxes_vs_tolerance": float(ratio.max()), "worst_box": worst, "scores": scores, "passed": ok}


def compare_detections(ref: list[torch.Tensor], got: list[torch.Tensor], max_det: int,
                       inputs: str = "") -> dict[str, Any]:
    """Per-image detections ``[n, 6]`` (x1, y1, x2, y2, score, class) of two NMS implementations run on
    identical predictions: the same rows exactly, in any order. A row of one side missing from the
    other passes only when the image hit ``max_det`` on both sides and the row's score equals that
    side's lowest kept score (exact ties at the cut may go either way)."""
    out: dict[str, Any] = {"inputs": inputs, "tolerance": "exact"}
    if len(ref) != len(got):
        return {**out, "passed": False, "error": f"{len(got)} images != reference {len(ref)}"}
    identical = different = ties = 0
    for r, g in zip(ref, got):
        r, g = torch.as_tensor(r).float(), torch.as_tensor(g).float()
        rows_r, rows_g = Counter(map(tuple, r.tolist())), Counter(map(tuple, g.tolist()))
        identical += sum((rows_r & rows_g).values())
        cut = len(r) >= max_det and len(g) >= max_det
        for rows, side in ((rows_r - rows_g, r), (rows_g - rows_r, g)):
            for row, count in rows.items():
                if cut and row[4] == float(side[:, 4].min()):
                    ties += count
                else:
                    different += count
    result = {**out, "reference_detections": sum(len(r) for r in ref), "detections": sum(len(g) for g in got),
              "identical": identical, "different": different, "ties_at_max_det": ties}
    if not result["reference_detections"] and not result["detections"]:
        return {**result, "status": EMPTY, "passed": None}  # nothing compared: neither passed nor failed
    return {**result, "status": "passed" if different == 0 else "failed", "passed": different == 0}


def empty_checks(report: dict[str, Any]) -> list[str]:
    """Names of the checks of a report that had nothing to compare (``status: empty``)."""
    return [name for name, check in report.get("checks", {}).items()
            if isinstance(check, dict) and check.get("status") == EMPTY]


def failures(report: dict[str, Any]) -> list[str]:
    """Names and values of the failed checks of a report (an empty check has not failed, nor passed)."""
    return [f"{name}: {check}" for name, check in report.get("checks", {}).items()
            if isinstance(check, dict) and check.get("passed", True) is False]


def raise_on_failure(report: dict[str, Any], where: str = "") -> None:
    failed = failures(report)
    if failed:
        tol = report.get("tolerances", {})
        raise ExportCheckError(f"export self-check failed{' (' + where + ')' if where else ''}; tolerances "
                               f"{tol}: " + "; ".join(failed))
