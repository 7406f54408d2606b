"""Reference numbers and helpers shared by the tests."""

from __future__ import annotations

import pathlib

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[1]

# Measured on the official YOLOv7 implementation (its Model class, nc=80):
# (training params, deploy-fused params, GFLOPs training FlopCounter, GFLOPs deploy-fused, image size)
OFFICIAL = {
    "yolov7-tiny": (6_228_762, 6_219_709, 13.70, 13.70, 640),
    "yolov7": (37_622_682, 36_905_341, 105.77, 104.51, 640),
    "yolov7x": (71_347_394, 71_311_741, 189.67, 189.68, 640),
    "yolov7-w6": (82_312_436, 70_394_300, 420.11, 359.73, 1280),
    "yolov7-e6": (111_898_292, 97_202_940, 588.09, 514.44, 1280),
    "yolov7-d6": (154_709_364, 133_757_052, 806.06, 701.75, 1280),
    "yolov7-e6e": (166_408_884, 151_687_420, 915.85, 842.20, 1280),
}
VARIANTS = list(OFFICIAL)

# Device-parametrised tests (marked ``cuda``: ``pytest -m cuda`` runs them on a GPU): the same body runs on
# "cpu" everywhere and on "cuda" where there is one; the cuda cases skip without CUDA.
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


@torch.no_grad()
def randomise_statistics(model: torch.nn.Module, seed: int = 0, spread: float = 0.2) -> torch.nn.Module:
    """Non-identity BN statistics/affine and implicit values, so fusion has something to fold.

    BN running var and weight are drawn from U(1 - spread, 1 + spread), running mean and bias from
    U(-0.1, 0.1); ImplicitA ~ N(0, spread), ImplicitM ~ N(1, spread) (10x the init std at 0.2).
    """
    g = torch.Generator().manual_seed(seed)

    def u(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            u(m.running_mean, -0.1, 0.1)
            u(m.running_var, 1 - spread, 1 + spread)
            u(m.weight, 1 - spread, 1 + spread)
            u(m.bias, -0.1, 0.1)
    detect = getattr(model, "detect", None)
    if detect is not None and not detect.fused:
        for p in detect.ia.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * spread)
        for p in detect.im.parameters():
            p.copy_(1 + torch.randn(p.shape, generator=g) * spread)
    return model


def run_cli(main, *args: str) -> tuple[int, str, str]:
    """Run a console-script ``main`` (``yolov7_lightning.cli.<name>.main``) in this process with
    ``args`` as its command line: (exit status, stdout, stderr). The same code path as the installed
    command, without paying the interpreter and import start-up for every call."""
    import contextlib
    import io
    import sys

    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["yolov7", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def save_tiny_checkpoint(path, names: tuple[str, ...] = ("a", "b"), seed: int = 0) -> pathlib.Path:
    """An untrained yolov7-tiny for ``names`` saved as a training checkpoint (hyper-parameters and
    weights, what ``yolov7-eval``, ``yolov7-predict``, ``yolov7-export`` and ``ckpt_path`` read);
    image size 64."""
    from yolov7_lightning.training.module import YOLOv7Module

    torch.manual_seed(seed)
    module = YOLOv7Module(model={"_target_": "yolov7_lightning.models.build_model", "variant": "yolov7-tiny",
                                 "num_classes": len(names)},
                          loss={"_target_": "yolov7_lightning.loss.YOLOv7Loss", "_partial_": True},
                          assigner={"_target_": "yolov7_lightning.assign.Assigner", "strategy": "lead_only"},
                          optim={}, schedule={}, image_size=64, batch_size=2, names=list(names),
                          category_ids=list(range(len(names))))
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return pathlib.Path(path)
