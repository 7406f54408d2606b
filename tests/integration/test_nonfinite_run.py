"""A diverging run (``optim.lr0=1e6``) through ``yolov7-train``: it stops with a message saying what
to try, and every checkpoint on disk is finite, including one written after skipped steps (the
forward pass of a skipped step used to leave NaN BatchNorm statistics in ``last.ckpt``)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import run_cli
from yolov7_lightning.cli import train as train_cli
from yolov7_lightning.training.checkpoint_io import AtomicCheckpointIO
from yolov7_lightning.training.module import NonFiniteLossError

# 8 images in batches of 4: 2 steps an epoch; the loss turns NaN in epoch 1 (steps 2, 3: skipped, then
# last.ckpt is written) and the third NaN in a row (epoch 2) stops the run
DIVERGING = ["data.source.num_train=8", "data.source.num_val=4", "data.source.image_size=128", "data.img_size=128",
             "data.batch_size=4", "data.num_workers=0", "schedule.warmup_min_iters=0", "schedule.warmup_epochs=0",
             "optim.nominal_batch=4", "optim.lr0=1e6", "optim.max_nonfinite=3", "schedule.epochs=4",
             "export.enabled=false", "visuals.enabled=false"]


def finite_everywhere(obj) -> list[str]:
    bad = []

    def walk(x, key):
        if isinstance(x, torch.Tensor):
            if x.is_floating_point() and not torch.isfinite(x).all():
                bad.append(key)
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{key}.{k}")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{key}.{i}")

    walk(obj, "")
    return bad


def test_diverging_run_keeps_finite_checkpoints(tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli(train_cli.main, f"hydra.run.dir={run}", f"data.source.root={tmp_path / 'shapes'}",
                             *DIVERGING)
    assert code == 1, out[-2000:] + err[-2000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: 3 non-finite losses in a row") and "Traceback" not in err
    assert "optim.lr0" in line and "optim.grad_clip" in line and "check the data" in line
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["yolov7"]["nonfinite_total"] >= 1  # written after skipped steps
    for name in ("best.ckpt", "last.ckpt"):
        ckpt = torch.load(run / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert finite_everywhere({k: ckpt[k] for k in ("state_dict", "current_model_state", "optimizer_states")}) == []


def test_a_nonfinite_checkpoint_is_never_written(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)
    before = path.read_bytes()
    with pytest.raises(NonFiniteLossError, match=r"refusing to write .*last.ckpt: 1 tensor\(s\) hold NaN or inf "
                                                 r"\(e.g. state_dict.w\); the previous file is kept.*optim.lr0"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("nan")])}}, path)
    assert path.read_bytes() == before
