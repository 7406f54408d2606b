"""The time breakdown's bookkeeping: each hook's interval lands in its part (a scripted clock)."""

from __future__ import annotations

import types

import pytest
import torch

from yolov7_lightning.errors import ConfigError
from yolov7_lightning.training.callbacks import timing
from yolov7_lightning.training.callbacks.timing import TimeBreakdown


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_each_interval_goes_to_its_part(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    net = torch.nn.Linear(2, 2)
    module = types.SimpleNamespace(model=net, device=torch.device("cpu"))
    trainer = types.SimpleNamespace(sanity_checking=False, is_global_zero=True)
    cb = TimeBreakdown()
    cb.on_fit_start(trainer, module)
    clock.t = 1.0
    cb.on_train_epoch_start(trainer, module)      # 1 s before the epoch: "other"
    for _ in range(2):
        clock.t += 2.0                            # waiting for the batch
        cb.on_train_batch_start(trainer, module, None, 0)
        clock.t += 0.5                            # input preparation
        net.train()
        # the forward pass takes 3 s: the hooks see the clock before and after it
        handle = net.register_forward_pre_hook(lambda m, a: setattr(clock, "t", clock.t + 3.0))
        net(torch.zeros(1, 2))
        handle.remove()
        clock.t += 0.25                           # loss
        cb.on_before_backward(trainer, module, None)
        clock.t += 4.0
        cb.on_after_backward(trainer, module)
        clock.t += 0.75                           # optimizer step
        cb.on_train_batch_end(trainer, module, None, None, 0)
    cb.on_validation_start(trainer, module)
    clock.t += 5.0
    cb.on_validation_end(trainer, module)
    cb.on_train_epoch_end(trainer, module)
    clock.t += 1.5                                # checkpoints
    net.eval()
    net(torch.zeros(1, 2))                        # an eval-mode forward (validation) is not "forward"
    cb.on_fit_end(trainer, module)
    s = cb.seconds
    assert s["data"] == 2 * 2.5 and s["forward"] == 2 * 3.0 and s["loss"] == 2 * 0.25
    assert s["backward"] == 2 * 4.0 and s["step"] == 2 * 0.75 and s["validation"] == 5.0
    assert s["other"] == 1.0 + 1.5
    assert cb.record()["total_s"] == clock.t


def test_a_mode_other_than_auto_or_true_is_a_config_error():
    with pytest.raises(ConfigError, match="time_breakdown: auto, true or false, got 'yes'"):
        TimeBreakdown("yes")
