"""The callbacks of a training run: the ones every run has, then the ``callbacks`` config group
(``conf/callbacks/default.yaml``) in its order, each entry following the command's switches, left out
with ``callbacks.<name>=null``, added with ``+callbacks.<name>={_target_: ...}``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hydra import compose
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

from yolov7_lightning.errors import ConfigError
from yolov7_lightning.training.budget import TimeBudget
from yolov7_lightning.training.callbacks import DeployExport, LogRunInfo, PeriodicCheckpoint, ValidationVisuals, YOLOv7EMA
from yolov7_lightning.training.callbacks.build import build_callbacks
from yolov7_lightning.training.callbacks.records import EpochRecords
from yolov7_lightning.training.callbacks.timing import TimeBreakdown
from yolov7_lightning.training.ddp import ReplicaConsistency
from yolov7_lightning.training.signals import StopSignal

EVERY_RUN = [ModelCheckpoint, ModelCheckpoint, EpochRecords, StopSignal, ReplicaConsistency]
OFF = ["time_breakdown=false", "ema=false", "export.enabled=false", "visuals.enabled=false"]  # the default switches that are on, off


def built(tmp_path, *overrides):
    cfg = compose("train", overrides=list(overrides))
    return build_callbacks(cfg.callbacks, tmp_path / "checkpoints", {"config": {"seed": 3}, "summary": {"p": 1}})


def kinds(callbacks):
    return [type(c) for c in callbacks]


def test_the_default_run_has_its_callbacks_in_order(hydra_ctx, tmp_path):
    callbacks = built(tmp_path)
    assert kinds(callbacks) == [*EVERY_RUN, TimeBreakdown, YOLOv7EMA, DeployExport, ValidationVisuals, LogRunInfo]
    assert callbacks[len(EVERY_RUN)].mode == "auto"
    best, last, records = callbacks[:3]
    assert (best.monitor, best.mode, best.filename, last.monitor, last.filename) == (
        "val/fitness", "max", "best", None, "last")
    assert records.best_checkpoint is best and records.last_path == str(tmp_path / "checkpoints" / "last.ckpt")
    export, visuals, info = callbacks[-3:]
    assert export.options.formats == ("deploy", "onnx") and export.strict is False and export.on_best is False
    assert (visuals.every_n_epochs, visuals.num_images) == (5, 4)
    assert info.config == {"seed": 3} and info.summary == {"p": 1}  # the values the command gives (???)


def test_switches_enable_each_entry(hydra_ctx, tmp_path):
    assert kinds(built(tmp_path, *OFF)) == [*EVERY_RUN, LogRunInfo]
    callbacks = built(tmp_path, *OFF, "save_period=3", "schedule.minutes=2", "early_stop_patience=4",
                      "test_after_fit=true")
    assert kinds(callbacks) == [*EVERY_RUN, PeriodicCheckpoint, TimeBudget, EarlyStopping, LogRunInfo]
    periodic, budget, stop = callbacks[5:8]
    assert periodic.dirpath == str(tmp_path / "checkpoints") and periodic._every_n_epochs == 3
    assert periodic.state_key == "PeriodicCheckpoint{'kind': 'save_period', 'every_n_epochs': 3}"  # resumes keep it
    assert budget.budget == 120.0 and budget.end_passes == 1
    assert (stop.monitor, stop.mode, stop.patience) == ("val/fitness", "max", 4)


def test_entries_are_left_out_or_added_from_the_command_line(hydra_ctx, tmp_path):
    callbacks = built(tmp_path, "callbacks.ema=null", "callbacks.visuals=null",
                      "+callbacks.lr={_target_: lightning.pytorch.callbacks.LearningRateMonitor, logging_interval: step}")
    assert kinds(callbacks) == [*EVERY_RUN, TimeBreakdown, DeployExport, LogRunInfo, LearningRateMonitor]
    assert callbacks[-1].logging_interval == "step"


def test_without_the_group_a_run_has_the_callbacks_every_run_has(hydra_ctx, tmp_path):
    cfg = compose("train", overrides=["~callbacks"])
    assert "callbacks" not in cfg
    assert kinds(build_callbacks(cfg.get("callbacks"), tmp_path, {})) == EVERY_RUN


def test_bad_entries_stop_naming_the_key(hydra_ctx, tmp_path):
    with pytest.raises(ConfigError, match=r"save_period=-2: must be >= 1 \(0: no periodic checkpoints\)"):
        built(tmp_path, "save_period=-2")
    with pytest.raises(ConfigError, match=r"callbacks\.x: needs _target_"):
        built(tmp_path, "+callbacks.x={patience: 3}")
    with pytest.raises(ConfigError, match=r"callbacks\.x\.monitor: \?\?\? \(missing\); the command gives only dirpath"):
        built(tmp_path, "+callbacks.x={_target_: lightning.pytorch.callbacks.EarlyStopping, monitor: ???}")


def test_the_budget_reserves_the_time_of_the_export_it_finds():
    export = DeployExport()
    budget = TimeBudget(minutes=1)
    module = SimpleNamespace(schedule=SimpleNamespace(epochs=10))
    budget.setup(SimpleNamespace(callbacks=[export, budget]), module, "fit")
    assert budget._end_trial == export.trial_seconds
    alone = TimeBudget(minutes=1)
    alone.setup(SimpleNamespace(callbacks=[alone]), module, "fit")
    assert alone._end_trial is None
