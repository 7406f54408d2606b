"""End-to-end detection graph: the deploy model followed by the standard ONNX ``NonMaxSuppression``.

:class:`EndToEnd` wraps a model whose eval output is ``[B, N, 5 + nc]`` (cx, cy, w, h in input pixels,
sigmoid objectness, sigmoid classes) and returns ``detections [K, 7]``: batch index, x1, y1, x2, y2,
score, class (all float32), sorted by batch index, then by decreasing score; at most ``max_det`` rows
per image. It follows the protocol of :func:`yolov7_lightning.eval.non_max_suppression`:
score = objectness x class probability (objectness alone when ``nc == 1``), kept when
``> conf_thres``, class-aware NMS at ``iou_thres``; ``multi_label`` keeps every (box, class) pair,
otherwise only each box's best class: exactly one, the first maximum (lowest class id) when classes
tie, as ``torch.max`` in the PyTorch path. Differences: no ``max_nms`` candidate cap, and detections
whose scores tie exactly at the ``max_det`` cut may be chosen differently.

In PyTorch the suppression runs with torchvision (so the wrapper is usable and testable as is); in
ONNX export it becomes one ``NonMaxSuppression`` node (opset >= 11) over ``scores [B, nc, N]``.
:class:`Select` is the NMS stage alone (``predictions`` -> ``detections``): the ONNX end-to-end graph
is the model's graph followed by the graph of :class:`Select` (see :mod:`.onnx_export`), so the NMS
part can be run and checked on its own.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import batched_nms

from ..errors import ConfigError
from ..eval.nms import PREDICT


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` semantics: ``boxes [B, N, 4]`` (x1, y1, x2, y2), ``scores [B, C, N]``
    -> ``selected [K, 3]`` int64 (batch, class, box), per class at most ``max_out`` boxes."""

    @staticmethod
    def forward(ctx, boxes: torch.Tensor, scores: torch.Tensor, max_out: int, iou_thres: float,
                score_thres: float) -> torch.Tensor:
        out = []
        for b in range(boxes.shape[0]):
            c, n = (scores[b] > score_thres).nonzero(as_tuple=True)
            s = scores[b, c, n]
            bx = boxes[b, n]
            bx = bx - bx.min().clamp(max=0) if len(bx) else bx  # batched_nms offsets assume coords >= 0
            keep = batched_nms(bx, s, c, iou_thres)
            c, n, s = c[keep], n[keep], s[keep]
            order = torch.argsort(c * 2 - s.double(), stable=True)  # class, then decreasing score
            c, n = c[order], n[order]
            rank = torch.zeros_like(c)
            for cls in c.unique():
                m = c == cls
                rank[m] = torch.arange(int(m.sum()), device=c.device)
            sel = rank < max_out
            out.append(torch.stack((torch.full_like(c[sel], b), c[sel], n[sel]), 1))
        return torch.cat(out) if out else torch.zeros(0, 3, dtype=torch.long, device=boxes.device)

    @staticmethod
    def symbolic(g, boxes, scores, max_out: int, iou_thres: float, score_thres: float):
        return g.op("NonMaxSuppression", boxes, scores,
                    g.op("Constant", value_t=torch.tensor([max_out], dtype=torch.long)),
                    g.op("Constant", value_t=torch.tensor([iou_thres], dtype=torch.float)),
                    g.op("Constant", value_t=torch.tensor([score_thres], dtype=torch.float)),
                    center_point_box_i=0)


def check_nms_options(conf_thres: float, iou_thres: float, max_det: int) -> None:
    if not 0 <= conf_thres < 1 or not 0 < iou_thres <= 1 or max_det < 1:
        raise ConfigError(f"need 0 <= conf_thres < 1, 0 < iou_thres <= 1, max_det >= 1 "
                          f"(got {conf_thres}, {iou_thres}, {max_det})")


class Select(nn.Module):
    """The NMS stage: decoded predictions ``[B, N, 5 + nc]`` -> ``detections [K, 7]`` (module docstring)."""

    def __init__(self, conf_thres: float = PREDICT.conf_thres, iou_thres: float = PREDICT.iou_thres,
                 max_det: int = PREDICT.max_det, multi_label: bool = PREDICT.multi_label):
        super().__init__()
        check_nms_options(conf_thres, iou_thres, max_det)
        self.conf_thres, self.iou_thres, self.max_det, self.multi_label = conf_thres, iou_thres, max_det, multi_label

    def forward(self, pred: torch.Tensor) -> torch.Tensor:
        xy, half = pred[..., :2], pred[..., 2:4] / 2
        boxes = torch.cat((xy - half, xy + half), -1)  # same arithmetic as boxes.xywh_to_xyxy
        obj = pred[..., 4:5]
        nc = pred.shape[-1] - 5
        scores = obj if nc == 1 else pred[..., 5:] * obj  # [B, N, nc]
        if not self.multi_label and nc > 1:  # one class per box: the first maximum (ArgMax, select_last_index=0)
            best = scores.argmax(-1, keepdim=True)
            scores = scores * (best == torch.arange(nc, device=pred.device)).to(scores.dtype)
        scores = scores.transpose(1, 2).contiguous()  # [B, nc, N]
        sel = _NonMaxSuppression.apply(boxes, scores, self.max_det, self.iou_thres, self.conf_thres)
        b, c, n = sel[:, 0], sel[:, 1], sel[:, 2]
        box = boxes[b, n]
        score = scores[b, c, n]
        order = torch.argsort(b.to(score.dtype) * 2 - score)  # batch, then decreasing score (scores in [0, 1])
        b, c, box, score = b[order], c[order], box[order], score[order]
        # rank within its image via a cumulative count over a one-hot of the batch index
        onehot = (b[:, None] == torch.arange(pred.shape[0], device=b.device)[None]).to(torch.long)
        rank = (onehot.cumsum(0) * onehot).sum(1) - 1
        keep = rank < self.max_det
        det = torch.cat((b[:, None].to(box.dtype), box, score[:, None], c[:, None].to(box.dtype)), 1)
        return det[keep]


class EndToEnd(nn.Module):
    """``model`` + NMS: images ``[B, 3, H, W]`` -> ``detections [K, 7]`` (see the module docstring)."""

    def __init__(self, model: nn.Module, conf_thres: float = PREDICT.conf_thres,
                 iou_thres: float = PREDICT.iou_thres, max_det: int = PREDICT.max_det,
                 multi_label: bool = PREDICT.multi_label):
        super().__init__()
        self.model = model
        self.nms = Select(conf_thres, iou_thres, max_det, multi_label)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.select(self.model(images))

    def select(self, pred: torch.Tensor) -> torch.Tensor:
        """Decoded predictions ``[B, N, 5 + nc]`` -> ``detections [K, 7]``."""
        return self.nms(pred)


def split_detections(det: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``detections [K, 7]`` -> ``batch_size`` tensors ``[n_i, 6]`` (x1, y1, x2, y2, score, class), the
    layout of :func:`yolov7_lightning.eval.non_max_suppression`."""
    det = torch.as_tensor(det)
    return [det[det[:, 0] == i, 1:] for i in range(batch_size)]
