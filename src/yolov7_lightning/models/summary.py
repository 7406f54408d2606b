"""Parameter and FLOP counts of a model in its training and deploy forms."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .fuse import to_deploy
from .yolo import YOLOv7


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: YOLOv7, image_size: int | tuple[int, int]) -> float:
    """Conv/matmul GFLOPs (2 x MAC) of one image at ``image_size``, as FlopCounterMode counts them.

    The model runs on the ``meta`` device (a copy if needed), so nothing is computed; the training form
    includes the aux head, the deploy form does not.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    meta = _on_meta(model)
    x = torch.zeros(1, 3, h, w, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta.forward_heads(x)
    return counter.get_total_flops() / 1e9


def _on_meta(model: YOLOv7) -> YOLOv7:
    if next(model.parameters()).device.type == "meta":
        return model
    return copy.deepcopy(model).to("meta")


def summarize(model: YOLOv7, image_size: int | None = None) -> dict[str, Any]:
    """The figures ``yolov7-info`` prints: params and GFLOPs in both forms, module counts."""
    size = image_size or model.arch.image_size
    deploy = to_deploy(model)
    return {
        "variant": model.arch.name,
        "num_classes": model.num_classes,
        "aux_head": model.aux_head,
        "image_size": size,
        "strides": list(model.arch.strides),
        "params_train": count_params(model),
        "params_deploy": count_params(deploy),
        "gflops_train": round(count_gflops(model, size), 3),
        "gflops_deploy": round(count_gflops(deploy, size), 3),
        "modules_train": len(list(model.modules())),
        "modules_deploy": len(list(deploy.modules())),
    }
