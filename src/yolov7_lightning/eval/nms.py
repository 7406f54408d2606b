"""Non-maximum suppression with the official YOLOv7 test protocol, on torchvision's batched NMS.

Facts followed (official ``utils/general.py:non_max_suppression``, see docs/evaluation.md):

1. rows with objectness ``<= conf_thres`` are dropped first;
2. score = objectness x class probability (for ``nc == 1`` the score is the objectness alone);
3. ``multi_label``: every (box, class) pair with score ``> conf_thres`` is a detection, otherwise
   only the best class of each box (one class: the first maximum, the lowest class id, when
   classes tie exactly, as ``torch.max``; the ONNX end-to-end graph selects the same);
4. optional class filter; if more than ``max_nms`` pairs remain, the top ``max_nms`` by score;
5. class-aware NMS (``agnostic``: class-blind) at ``iou_thres``;
6. at most ``max_det`` detections per image, highest scores first.

Deliberate difference: the official function stops after 10 s of wall time and returns no
detections for the remaining images of the batch. That makes results depend on the machine's speed
and load, so there is no time limit here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torchvision.ops import batched_nms, nms

from ..boxes import xywh_to_xyxy

__all__ = ["PREDICT", "PRESETS", "TEST", "NMSSettings", "non_max_suppression", "register_nms_resolver"]


@dataclass(frozen=True)
class NMSSettings:
    """The thresholds of :func:`non_max_suppression`: the one place the project's NMS numbers are
    written (:data:`TEST`, :data:`PREDICT`); configs read them with ``${nms:<preset>.<field>}``."""

    conf_thres: float
    iou_thres: float
    max_det: int = 300
    multi_label: bool = False

    @classmethod
    def of(cls, obj: Any) -> NMSSettings:
        """The settings that ``obj`` carries as attributes of the same names."""
        return cls(**{name: getattr(obj, name) for name in cls.__dataclass_fields__})

    def kwargs(self) -> dict[str, Any]:
        """``conf_thres``, ``iou_thres``, ``max_det``, ``multi_label`` as keyword arguments."""
        return asdict(self)


#: the official test protocol (``test.py``: every (box, class) pair above conf 0.001, IoU 0.65, 300 per image)
TEST = NMSSettings(conf_thres=0.001, iou_thres=0.65, max_det=300, multi_label=True)
#: the official prediction defaults (``detect.py``: conf 0.25, IoU 0.45, the best class of each box,
#: the NMS's own cap of 300 per image)
PREDICT = NMSSettings(conf_thres=0.25, iou_thres=0.45, max_det=300, multi_label=False)
PRESETS = {"test": TEST, "predict": PREDICT}


def _preset_value(key: str) -> Any:
    preset, _, name = key.partition(".")
    if preset not in PRESETS or name not in NMSSettings.__dataclass_fields__:
        raise ValueError(f"${{nms:{key}}}: expected <preset>.<field>, preset in {sorted(PRESETS)}, "
                         f"field in {sorted(NMSSettings.__dataclass_fields__)}")
    return getattr(PRESETS[preset], name)


def register_nms_resolver() -> None:
    """``${nms:predict.conf_thres}`` (``test`` | ``predict``, any :class:`NMSSettings` field) in configs."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("nms"):
        OmegaConf.register_new_resolver("nms", _preset_value)


def non_max_suppression(
    pred: torch.Tensor,
    conf_thres: float = TEST.conf_thres,
    iou_thres: float = TEST.iou_thres,
    multi_label: bool = TEST.multi_label,
    max_det: int = TEST.max_det,
    max_nms: int = 30000,
    agnostic: bool = False,
    classes: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """Decoded predictions -> per-image detections.

    Args:
        pred: ``[B, N, 5 + nc]``: cx, cy, w, h (pixels of the network input), sigmoid objectness,
            ``nc`` sigmoid class scores (the eval output of the model). Any float dtype, any device.
        conf_thres: minimum objectness and minimum score (strictly greater, as officially).
        iou_thres: IoU above which a lower-scored box of the same class (any class if
            ``agnostic``) is suppressed.
        multi_label: one detection per (box, class) pair above ``conf_thres`` (official test
            protocol) instead of one per box with its best class.
        max_det: detections kept per image.
        max_nms: at most this many candidates (by score) enter NMS per image.
        agnostic: class-blind NMS.
        classes: keep only these contiguous class ids.

    Returns:
        ``B`` float32 tensors ``[n_i, 6]`` on ``pred``'s device: x1, y1, x2, y2 (input pixels),
        score, class (contiguous id, as float), sorted by decreasing score.
    """
    if pred.ndim != 3 or pred.shape[-1] < 6:
        raise ValueError(f"pred must be [B, N, 5 + nc] with nc >= 1, got {tuple(pred.shape)}")
    nc = pred.shape[-1] - 5
    keep_classes = None if classes is None else torch.as_tensor(list(classes), device=pred.device)
    return [
        _one_image(x.float(), nc, conf_thres, iou_thres, multi_label, max_det, max_nms, agnostic, keep_classes)
        for x in pred
    ]


def _one_image(
    x: torch.Tensor, nc: int, conf_thres: float, iou_thres: float, multi_label: bool,
    max_det: int, max_nms: int, agnostic: bool, keep_classes: torch.Tensor | None,
) -> torch.Tensor:
    """``x [N, 5 + nc]`` float32 -> ``[n, 6]`` detections of one image."""
    x = x[x[:, 4] > conf_thres]
    boxes = xywh_to_xyxy(x[:, :4])
    scores = x[:, 4:5].expand(-1, nc) if nc == 1 else x[:, 5:] * x[:, 4:5]  # [n, nc]
    if multi_label:
        i, j = (scores > conf_thres).nonzero(as_tuple=True)
        det = torch.cat((boxes[i], scores[i, j, None], j[:, None].float()), 1)
    else:
        conf, j = scores.max(1, keepdim=True)
        det = torch.cat((boxes, conf, j.float()), 1)[conf.view(-1) > conf_thres]
    if keep_classes is not None:
        det = det[(det[:, 5:6] == keep_classes.to(det.dtype)).any(1)]
    if len(det) > max_nms:
        det = det[det[:, 4].topk(max_nms).indices]
    if not len(det):
        return det.reshape(0, 6)
    groups = torch.zeros_like(det[:, 5]) if agnostic else det[:, 5]
    # batched_nms separates classes by offsetting boxes by (max coordinate + 1) per class, which
    # assumes coordinates >= 0; decoded boxes at the image border can be negative. IoU does not
    # change under translation, so shift the boxes to start at 0.
    boxes = det[:, :4] - det[:, :4].min().clamp(max=0)
    if boxes.numel() <= _VANILLA_ABOVE[boxes.device.type == "cpu"]:
        return det[batched_nms(boxes, det[:, 4], groups.long(), iou_thres)[:max_det]]
    return det[_top_kept(boxes, det[:, 4], groups.long(), iou_thres, max_det)]


# torchvision's batched_nms runs one NMS per class (its "vanilla" path) above this many box coordinates
# (CPU, CUDA), and offsets the boxes by class below it; the candidates of an image above it take _top_kept
_VANILLA_ABOVE = {True: 4000, False: 100_000}


def _per_class_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_thres: float) -> torch.Tensor:
    """torchvision's per-class batched NMS: the kept indices, by decreasing score."""
    keep = torch.zeros_like(scores, dtype=torch.bool)
    for g in torch.unique(groups):
        idx = torch.where(groups == g)[0]
        keep[idx[nms(boxes[idx], scores[idx], iou_thres)]] = True
    kept = torch.where(keep)[0]
    return kept[scores[kept].sort(descending=True)[1]]


def _top_kept(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_thres: float,
              max_det: int) -> torch.Tensor:
    """The first ``max_det`` boxes per-class NMS keeps, from the fewest highest-scoring candidates.

    Greedy NMS decides a box by the higher-scoring boxes of its class alone, so NMS on the candidates
    scoring at least some threshold keeps exactly the boxes the whole set's NMS keeps above it; once
    that keeps ``max_det`` boxes, the rest cannot enter the result. The prefix starts at 4 x max_det
    candidates (ties at its edge included) and grows 4-fold until it keeps enough or holds all. An
    untrained model's 30,000 candidates take milliseconds instead of a quadratic NMS over all of them."""
    n = len(scores)
    order = scores.argsort(descending=True)
    k = 4 * max_det
    while True:
        if k >= n:
            return _per_class_nms(boxes, scores, groups, iou_thres)[:max_det]
        idx = order[: int((scores >= scores[order[k - 1]]).sum())]  # every candidate tied with the k-th too
        keep = _per_class_nms(boxes[idx], scores[idx], groups[idx], iou_thres)
        if len(keep) >= max_det:
            return idx[keep[:max_det]]
        k *= 4
