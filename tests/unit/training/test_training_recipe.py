"""The official optimiser recipe pieces: parameter groups, schedule, warm-up, EMA ramp, non-finite."""

from __future__ import annotations

import math
import random

import pytest
import torch

from yolov7_lightning.models import build_model
from yolov7_lightning.nn import ImplicitA, ImplicitM
from yolov7_lightning.training.callbacks.ema import YOLOv7EMA, ema_decay
from yolov7_lightning.training.module import NonFiniteLossError, YOLOv7Module, fitness
from yolov7_lightning.training.optim import LRLambda, WarmUp, accumulation, build_optimizer, parameter_groups


def test_parameter_groups_follow_the_official_split():
    model = build_model("yolov7-tiny", num_classes=3)
    no_decay, decay, biases = parameter_groups(model)
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(no_decay).isdisjoint(ids(decay)) and ids(decay).isdisjoint(ids(biases))
    assert len(no_decay) + len(decay) + len(biases) == len(list(model.parameters()))
    bn_weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    implicit = [m.implicit for m in model.modules() if isinstance(m, (ImplicitA, ImplicitM))]
    assert ids(no_decay) == ids(bn_weights + implicit)
    assert ids(decay) == {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Conv2d)}


def test_weight_decay_scaled_by_the_nominal_batch():
    model = build_model("yolov7-tiny", num_classes=3)
    opt = build_optimizer(model, batch_size=16, nominal_batch=64)  # accumulate 4: 16 * 4 / 64 = 1
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, pytest.approx(5e-4), 0.0]
    opt = build_optimizer(model, batch_size=24, nominal_batch=64)  # accumulate 3: 24 * 3 / 64
    assert opt.param_groups[1]["weight_decay"] == pytest.approx(5e-4 * 72 / 64)
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.937
    assert accumulation(16, 1, 64) == 4 and accumulation(16, 8, 64) == 1 and accumulation(24, 1, 64) == 3


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_uses_the_fused_kernel_with_the_loop_update(name):
    """Adam/AdamW on CPU tensors take torch's fused kernel; three steps match torch's per-tensor loop
    (the reference implementation) on the same groups."""
    torch.manual_seed(0)
    model = build_model("yolov7-tiny", num_classes=3, scaling={"mode": "width", "width": 0.5})
    reference = build_model("yolov7-tiny", num_classes=3, scaling={"mode": "width", "width": 0.5})
    reference.load_state_dict(model.state_dict())
    opt = build_optimizer(model, name=name, lr0=0.01, batch_size=8, nominal_batch=8)
    assert all(g["fused"] is True for g in opt.param_groups)
    ref_opt = build_optimizer(reference, name=name, lr0=0.01, batch_size=8, nominal_batch=8, fused=False)
    for g in ref_opt.param_groups:
        assert not g["fused"]
        g["foreach"] = False  # the plain per-tensor loop
    assert [g["weight_decay"] for g in opt.param_groups] == [g["weight_decay"] for g in ref_opt.param_groups]
    params, ref_params = list(model.parameters()), list(reference.parameters())
    before = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(1)
    for _ in range(3):  # the same gradients for both: the optimizers alone decide the difference
        for p, q in zip(params, ref_params):
            p.grad = torch.randn(p.shape, generator=g) * 1e-2
            q.grad = p.grad.clone()
        opt.step()
        ref_opt.step()
    assert all(not torch.equal(p, b) for p, b in zip(params, before))  # every tensor moved
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_one_cycle_and_linear_schedules():
    cos = LRLambda("cosine", lrf=0.1, epochs=300)
    assert cos(0) == pytest.approx(1.0) and cos(300) == pytest.approx(0.1) and cos(150) == pytest.approx(0.55)
    lin = LRLambda("linear", lrf=0.01, epochs=11)
    assert lin(0) == pytest.approx(1.0) and lin(10) == pytest.approx(0.01) and lin(5) == pytest.approx(0.505)
    with pytest.raises(ValueError, match="valid: cosine, linear"):
        LRLambda("step")


def test_warm_up_ramps_lr_momentum_and_accumulation():
    model = build_model("yolov7-tiny", num_classes=3)
    opt = build_optimizer(model, lr0=0.01)
    for g in opt.param_groups:
        g["initial_lr"] = 0.01
    w = WarmUp(epochs=3, min_iters=1000)
    assert w.iterations(100) == 1000 and w.iterations(1000) == 3000
    w.apply(opt, 0, 1000, 1.0, 0.937)
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0, pytest.approx(0.1)]
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.8)
    w.apply(opt, 500, 1000, 1.0, 0.937)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.005, 0.005, 0.055])
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.8685)
    w.apply(opt, 1000, 1000, 0.9, 0.937)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.009] * 3)
    assert [WarmUp.accumulate(i, 1000, 4) for i in (0, 500, 1000)] == [1, 2, 4]  # round(2.5) = 2


def test_ema_ramp_is_the_official_one():
    assert ema_decay(1) == pytest.approx(0.9999 * (1 - math.exp(-1 / 2000)))
    assert ema_decay(2000) == pytest.approx(0.9999 * (1 - math.exp(-1)))
    ema = YOLOv7EMA()
    averaged, current = [torch.zeros(3), torch.ones(2, dtype=torch.long)], [torch.ones(3), torch.full((2,), 7)]
    ema._kwargs["multi_avg_fn"](averaged[:1], current[:1], torch.tensor(1))  # second update: u = 2
    d = ema_decay(2)
    assert torch.allclose(averaged[0], torch.full((3,), 1 - d))
    ema._kwargs["multi_avg_fn"](averaged[1:], current[1:], torch.tensor(5))
    assert averaged[1].tolist() == [7, 7]  # integer buffers are copied


def test_fitness():
    assert fitness({"map50": 0.5, "map": 0.3}) == pytest.approx(0.32)


def _nonfinite_module(max_nonfinite: int = 3) -> YOLOv7Module:
    return YOLOv7Module(
        model={"_target_": "yolov7_lightning.models.build_model", "variant": "yolov7-tiny", "num_classes": 2},
        loss={"_target_": "yolov7_lightning.loss.YOLOv7Loss", "_partial_": True},
        assigner={"_target_": "yolov7_lightning.assign.Assigner", "strategy": "lead_only"},
        optim={"max_nonfinite": max_nonfinite}, schedule={})


NAN_COMPONENTS = {"lead/box": torch.tensor(float("nan")), "lead/obj": torch.tensor(0.1)}


def test_non_finite_losses_are_skipped_then_stop_the_run():
    module, comps = _nonfinite_module(), NAN_COMPONENTS
    assert module._check_finite(torch.tensor(1.0), comps)
    assert not module._check_finite(torch.tensor(float("nan")), comps)
    assert not module._check_finite(torch.tensor(float("inf")), comps)
    assert module.nonfinite_total == 2
    with pytest.raises(NonFiniteLossError, match=r"3 of the last 4 training steps had a non-finite loss "
                                                 r"\(optim.max_nonfinite=3\).*lead/box=nan, lead/obj=0\.1"):
        module._check_finite(torch.tensor(float("nan")), comps)


def test_every_other_step_non_finite_stops_the_run():
    """Finite steps between the skipped ones used to reset the count: such a run never stopped."""
    module, comps = _nonfinite_module(), NAN_COMPONENTS
    for _ in range(2):
        assert not module._check_finite(torch.tensor(float("nan")), comps)
        assert module._check_finite(torch.tensor(1.0), comps)
    with pytest.raises(NonFiniteLossError, match=r"3 of the last 5 training steps had a non-finite loss"):
        module._check_finite(torch.tensor(float("nan")), comps)
    spaced = _nonfinite_module()  # 2 of every 6 steps skipped: fewer than 3 in any window of 6, the run goes on
    for step in range(30):
        assert spaced._check_finite(torch.tensor(float("nan") if step % 3 == 0 else 1.0), comps) == (step % 3 != 0)
    assert spaced.nonfinite_total == 10


def test_pretrained_weights_from_a_checkpoint(tmp_path):
    from yolov7_lightning.training.weights import load_pretrained

    source = build_model("yolov7-tiny", num_classes=3)
    path = tmp_path / "w.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, path)
    target = build_model("yolov7-tiny", num_classes=3)
    load_pretrained(target, path)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    other = build_model("yolov7-tiny", num_classes=5)  # the expected partial case: all but the class-count head
    init = {k: v.clone() for k, v in other.state_dict().items()}
    counts = load_pretrained(other, path)
    assert len(counts.mismatched) == 9 and all(m.startswith(("detect.m.", "detect.im.")) for m in counts.mismatched)
    assert len(counts.loaded) == 335 and not counts.missing and not counts.unexpected
    assert torch.equal(other.state_dict()["detect.m.0.weight"], init["detect.m.0.weight"])
    assert torch.equal(other.state_dict()["backbone.stem.0.conv.weight"], source.state_dict()["backbone.stem.0.conv.weight"])
    with pytest.raises(ValueError, match="missing.pt: file not found"):
        load_pretrained(target, tmp_path / "missing.pt")


def test_multi_scale_resizes_images_and_boxes_without_host_tensors():
    from yolov7_lightning.testing.sync_counter import SyncCounter

    module = YOLOv7Module(
        model={"variant": "yolov7-tiny", "num_classes": 2}, loss={}, assigner={"strategy": "lead_only"},
        optim={"multi_scale": True}, schedule={}, image_size=128)
    images = torch.rand(2, 3, 96, 128)
    targets = torch.tensor([[0, 1, 40.0, 30.0, 20.0, 10.0], [1, 0, 64.0, 48.0, 32.0, 16.0]])
    random.seed(3)
    with SyncCounter() as counter:
        out, scaled = module._multi_scale(images, targets)
    h, w = out.shape[-2:]
    assert (h, w) != (96, 128) and h % 32 == w % 32 == 0
    fx, fy = w / 128, h / 96
    torch.testing.assert_close(scaled, targets * torch.tensor([1, 1, fx, fy, fx, fy]))
    assert counter.host_tensors == 0  # the scale from Python numbers: no host-to-device copy on a GPU
