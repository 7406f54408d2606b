"""The deploy form: BN folded into convs, RepConv -> one 3x3 conv, implicit knowledge folded into
the head convs, the auxiliary head dropped. Eval outputs are unchanged (up to float rounding)."""

from __future__ import annotations

import copy

import torch

from .yolo import YOLOv7


@torch.no_grad()
def to_deploy(model: YOLOv7, inplace: bool = False) -> YOLOv7:
    """Return the deploy form of ``model`` (a copy unless ``inplace``), in eval mode.

    Every module with a ``fuse()`` method folds itself (Conv+BN, RepConv, IDetect implicit);
    running BN statistics are used, so fuse a trained model, not one in the middle of a step.
    """
    m = model if inplace else copy.deepcopy(model)
    m.eval()
    for module in list(m.modules()):
        fuse = getattr(module, "fuse", None)
        if callable(fuse):
            fuse()
    m.aux_convs = None
    m.aux_head = False
    m.detect.drop_aux()
    m.deploy = True
    return m
