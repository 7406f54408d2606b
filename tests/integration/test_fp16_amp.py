"""The fp16 AMP path of ``trainer=gpu`` (``16-mixed``: autocast to float16 and a GradScaler) run on the
CPU: Lightning's ``MixedPrecision("16-mixed", "cpu")`` is the same plugin with the same scaler logic,
so what the GPU run does with the scaled gradients is checked here.

* ``optim.grad_clip`` clips the true gradient norm: in the manual training step the gradients are still
  multiplied by the scale, so clipping there clipped the true norm to ``grad_clip / scale``.
* a step whose every micro-step was skipped (non-finite loss) has no gradients: the GradScaler refuses such
  a step (an AssertionError from ``unscale_``), so it is not taken; the run stops with the
  non-finite error after ``optim.max_nonfinite`` as in fp32.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra import compose
from lightning.pytorch.plugins import MixedPrecision

from yolov7_lightning.cli.train import build
from yolov7_lightning.training.module import NonFiniteLossError

TINY = ["optim=sgd", "data.source.num_train=8", "data.source.num_val=4", "data.source.image_size=64", "data.img_size=64",
        "data.batch_size=4", "data.num_workers=0", "schedule.warmup_min_iters=0", "schedule.warmup_epochs=0",
        "optim.nominal_batch=4", "optim.weight_decay=0", "~logger", "export.enabled=false", "visuals.enabled=false",
        "ema=false", "anchors=keep", "trainer.precision=32-true"]


def module_and_data(tmp_path, *overrides):
    cfg = compose("train", [f"data.source.root={tmp_path / 'shapes'}", *TINY, *overrides])
    built = build(cfg, tmp_path / "run")
    return built.datamodule, built.module


def fit_one_step(datamodule, module, fp16: bool, tmp_path, steps: int = 1) -> None:
    plugins = [MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**8))] if fp16 else []
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=steps, limit_val_batches=0,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, plugins=plugins, default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=datamodule)


def update_norm(tmp_path, fp16: bool) -> tuple[float, float]:
    """The norm of the first step's weight update, and what it is when the gradient's norm is ``grad_clip``."""
    L.seed_everything(0)
    datamodule, module = module_and_data(tmp_path, "optim.grad_clip=1e-4", "optim.lr0=300")
    before = [p.detach().clone() for p in module.model.parameters()]
    fit_one_step(datamodule, module, fp16, tmp_path / ("fp16" if fp16 else "fp32"))
    o = module.optim  # SGD's first step (no weight decay, no warm-up): lr x g, x (1 + momentum) with Nesterov
    clipped = o.lr0 * (1 + o.momentum if o.nesterov else 1) * o.grad_clip
    return torch.cat([(p.detach() - b).flatten() for p, b in zip(module.model.parameters(), before)]).norm().item(), clipped


def test_gradient_clipping_clips_the_unscaled_gradients(hydra_ctx, tmp_path):
    (fp32, clipped), (fp16, _) = update_norm(tmp_path, fp16=False), update_norm(tmp_path, fp16=True)
    # both steps apply a gradient of norm grad_clip (the unclipped norm is ~10x more; clip_grad_norm_ adds 1e-6 to
    # the norm it divides by: < 1e-3 relative here; lr0 300 makes each weight's change well above float32's
    # resolution); clipping the scaled gradients made the fp16 step 256x (the scale) smaller
    assert fp32 == pytest.approx(clipped, rel=2e-3)
    assert fp16 == pytest.approx(clipped, rel=2e-3), (fp16, fp32)


def test_skipped_steps_under_the_grad_scaler_stop_with_the_nonfinite_error(hydra_ctx, tmp_path):
    datamodule, module = module_and_data(tmp_path, "optim.max_nonfinite=2")
    with torch.no_grad():
        next(module.model.parameters()).fill_(float("nan"))  # every loss non-finite: every step skipped
    with pytest.raises(NonFiniteLossError,
                       match=r"2 of the last 2 training steps had a non-finite loss \(optim.max_nonfinite=2\)"):
        fit_one_step(datamodule, module, True, tmp_path, steps=2)
    assert module.nonfinite_total == 2


def test_adamw_with_gradient_clipping_under_the_grad_scaler(hydra_ctx, tmp_path):
    """AdamW takes torch's fused kernel except under gradient clipping: Lightning clips the unscaled
    gradients, which a fused step under the grad scaler never exposes (it refuses such an optimizer)."""
    cfg = compose("train", [f"data.source.root={tmp_path / 'shapes'}", *(o for o in TINY if o != "optim=sgd"), "optim=adamw", "optim.lr0=0.01",
                            "optim.grad_clip=1.0"])
    built = build(cfg, tmp_path / "run")
    before = [p.detach().clone() for p in built.module.model.parameters()]
    fit_one_step(built.datamodule, built.module, True, tmp_path / "fp16")
    opt = built.module.trainer.optimizers[0]
    assert type(opt).__name__ == "AdamW" and not any(g["fused"] for g in opt.param_groups)
    moved = sum(not torch.equal(p, b) for p, b in zip(built.module.model.parameters(), before))
    assert moved > len(before) // 2
