"""A diverging run (``optim.lr0=1e6``) through ``yolov7-train``: it stops with exit status 1 and a
message saying what to try, and every checkpoint on disk is finite, including one written after
skipped steps (the forward pass of a skipped step used to leave NaN BatchNorm statistics in
``last.ckpt``). Finite steps between the skipped ones used to reset the count: such a run ended
"successfully" with mAP 0."""

from __future__ import annotations

import re

import pytest
import torch

from tests.helpers import run_cli
from yolov7_lightning.cli import train as train_cli
from yolov7_lightning.training.checkpoint_io import AtomicCheckpointIO
from yolov7_lightning.training.module import NonFiniteLossError

# 8 images in batches of 4: 2 steps an epoch; the loss turns non-finite from epoch 1 on (steps 2, 3:
# skipped, then last.ckpt is written); with the default optim.max_nonfinite (10 of the last 20 steps) the
# window never fills, but by the end of epoch 2 most of the run's steps were skipped: the run stops once
# that epoch's checkpoints are written
DIVERGING = ["recipe=quick", "data.source.num_train=8", "data.source.num_val=4", "data.source.image_size=128", "data.img_size=128",
             "data.batch_size=4", "data.num_workers=0", "schedule.warmup_min_iters=0", "schedule.warmup_epochs=0",
             "optim.nominal_batch=4", "optim.lr0=1e6", "schedule.epochs=4", "export.enabled=false",
             "visuals.enabled=false"]


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
    found = re.match(r"error: (\d+) of the (\d+) training steps so far had a non-finite loss \(skipped\), by the end "
                     r"of epoch \d+: the run diverged", line)
    assert found and 2 * int(found[1]) > int(found[2]) and "Traceback" not in err, line
    assert "optim.lr0" in line and "optim.grad_clip" in line and "check the data" in line
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["yolov7"]["nonfinite_total"] == int(found[1]) >= 1  # the diverged epoch's, after skipped steps
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
