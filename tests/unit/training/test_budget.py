"""The time-budget planner on numbers: epochs that fit, the cap, the minimum of one more epoch, the
overshoot allowed, and close-mosaic scaled to the plan."""

from __future__ import annotations

import pytest

from yolov7_lightning.training.budget import allowed_overshoot, plan_epochs, scaled_close_mosaic
from yolov7_lightning.training.optim import ScheduleSpec


def test_epochs_that_fit_the_budget():
    # 600 s budget, 1 epoch done in 50 s (40 s per epoch measured + 10 s start-up), 30 s for the export:
    # (600 - 50 - 30) / 40 = 13 more epochs
    assert plan_epochs(600, elapsed=50, done=1, epoch_seconds=40, end_seconds=30, cap=300, planned=300) == 14
    # the same after 10 epochs at 42 s: (600 - 430 - 30) / 42 = 3.33 -> 3 more
    assert plan_epochs(600, elapsed=430, done=10, epoch_seconds=42, end_seconds=30, cap=300, planned=14) == 13


def test_cap_is_the_most_epochs():
    assert plan_epochs(3600, elapsed=20, done=1, epoch_seconds=10, end_seconds=0, cap=12, planned=12) == 12


def test_plan_reached_ends_the_run_even_with_time_left():
    # the last planned epoch ran with the schedule's last learning rate: no more, whatever the time left
    assert plan_epochs(600, elapsed=300, done=14, epoch_seconds=20, end_seconds=0, cap=300, planned=14) == 14
    assert plan_epochs(600, elapsed=300, done=12, epoch_seconds=20, end_seconds=0, cap=12, planned=20) == 12


def test_one_more_epoch_when_it_ends_within_the_allowed_overshoot():
    # 560 s spent of 600, 50 s per epoch, 10 s export: no epoch fits; one more ends 20 s over (<= 50 s allowed)
    assert plan_epochs(600, elapsed=560, done=9, epoch_seconds=50, end_seconds=10, cap=300, planned=12) == 10
    # 5 % of the budget when that is bigger than an epoch: 3600 s, 100 s epochs, 3550 s spent -> 60 s over <= 180
    assert plan_epochs(3600, elapsed=3550, done=30, epoch_seconds=100, end_seconds=10, cap=300, planned=40) == 31


def test_stop_at_once_when_one_more_epoch_would_overshoot_too_much():
    # 600 s budget, 590 s spent, 50 s epochs, 20 s export: one more ends 60 s over > 50 s allowed
    assert plan_epochs(600, elapsed=590, done=3, epoch_seconds=50, end_seconds=20, cap=300, planned=10) == 3


def test_allowed_overshoot():
    assert allowed_overshoot(600, 50) == 50
    assert allowed_overshoot(3600, 100) == pytest.approx(180)


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="done >= 1"):
        plan_epochs(600, elapsed=0, done=0, epoch_seconds=10, end_seconds=0, cap=10, planned=10)
    with pytest.raises(ValueError, match="schedule.minutes=0"):
        ScheduleSpec(minutes=0)


@pytest.mark.parametrize("close, planned, cap, want", [(25, 54, 100, 14), (3, 12, 12, 3), (3, 5, 12, 1),
                                                       (3, 1, 12, 1), (0, 54, 100, 0)])
def test_close_mosaic_scales_with_the_plan(close, planned, cap, want):
    assert scaled_close_mosaic(close, planned, cap) == want


def test_state_carries_the_time_spent_over_a_resume():
    """A resumed run goes on from the seconds its checkpoint had spent, not from zero."""
    from types import SimpleNamespace

    from yolov7_lightning.training.budget import TimeBudget

    saved = {"budget": 600.0, "epoch_seconds": [40.0, 42.0, 41.0], "val_seconds": [5.0, 5.0, 5.0],
             "startup_seconds": 3.0, "elapsed": 130.0, "plan": {"epochs": 12, "warmup_epochs": 0.4, "close_mosaic": 3},
             "history": [{"done": 1, "planned": 12}], "epochs_log": [], "stopped_short": False, "trial_seconds": 8.0}
    budget = TimeBudget(minutes=10)
    module = SimpleNamespace(schedule=ScheduleSpec(epochs=40, minutes=10))
    budget.setup(SimpleNamespace(), module, "fit")  # Lightning: setup, then the checkpoint's callback states
    budget.load_state_dict(saved)
    assert 130.0 <= budget.elapsed() < 140.0
    assert budget.mean_epoch() == 41.0 and budget.end_reserve() == 8.0 and budget.plan.epochs == 12
    state = budget.state_dict()
    assert 130.0 <= state["elapsed"] < 140.0 and state["plan"] == saved["plan"] and state["trial_seconds"] == 8.0
    # the re-plan a resumed run makes: (600 - 130 - 8) / 41 = 11.3 -> 11 more after 3 done (the plan may grow)
    spent, per_epoch, reserve = budget.elapsed(), budget.mean_epoch(), budget.end_reserve()
    assert plan_epochs(600, spent, 3, per_epoch, reserve, cap=40, planned=budget.plan.epochs) == 14
