"""W&B run names/groups/mode and the validation pictures' pieces, without a training run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.types import RunMode
from omegaconf import OmegaConf

from yolov7_lightning.training.callbacks.visuals import (
    ValidationVisuals,
    boxes_panel,
    objectness_figure,
    objectness_maps,
    per_class_rows,
)
from yolov7_lightning.training.evaluation import EvalResult
from yolov7_lightning.training.loggers import run_group, run_name, wandb_logger


def hydra_cfg(tmp_path, mode, task, sweep_args=None, params=None):
    if sweep_args is not None:
        OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": sweep_args}}}), tmp_path / "multirun.yaml")
    return OmegaConf.create({"mode": mode, "overrides": {"task": task}, "runtime": {"output_dir": str(tmp_path / "0")},
                             "sweep": {"dir": str(tmp_path)}, "sweeper": {"params": params}})


def test_run_name_and_group(tmp_path):
    single = hydra_cfg(tmp_path, RunMode.RUN, ["data.batch_size=8", "seed=3"])
    assert run_name(single) == "data.batch_size=8,seed=3" and run_group(single) is None
    assert run_name(hydra_cfg(tmp_path, RunMode.RUN, [])) == "0"  # no overrides: the run folder's name
    # a multirun: the swept keys only (command line and the sweeper's params, e.g. from an experiment)
    sweep = hydra_cfg(tmp_path, RunMode.MULTIRUN, ["data.batch_size=8", "assigner=independent", "seed=2"],
                      sweep_args=["data.batch_size=8", "seed=1,2"], params={"assigner": "independent,lead_guided"})
    assert run_name(sweep) == "assigner=independent,seed=2"
    assert run_group(sweep) == tmp_path.name


def test_wandb_mode_env_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_logger(save_dir=str(tmp_path), name="a")._wandb_init["mode"] == "offline"  # the default
    monkeypatch.setenv("WANDB_MODE", "disabled")
    logger = wandb_logger(mode="online", save_dir=str(tmp_path), name="a", group="g")
    assert logger._wandb_init["mode"] == "disabled" and logger._wandb_init["group"] == "g"


def test_objectness_maps_and_figures():
    lead = [torch.zeros(2, 3, 8, 8, 7), torch.zeros(2, 3, 4, 4, 7)]
    lead[0][1, 2, 5, 6, 4] = 10.0  # one confident anchor of image 1
    maps = objectness_maps(lead)
    assert [tuple(m.shape) for m in maps] == [(2, 8, 8), (2, 4, 4)]
    assert maps[0][1, 5, 6] == pytest.approx(torch.sigmoid(torch.tensor(10.0)).item())
    assert maps[0][0].max() == pytest.approx(0.5)
    image = np.zeros((64, 64, 3), np.uint8)
    one = objectness_figure(image, [m[0].numpy() for m in maps], None, [8, 16])
    two = objectness_figure(image, [m[0].numpy() for m in maps], [m[0].numpy() for m in maps], [8, 16])
    assert one.dtype == np.uint8 and one.shape[2] == 3 and two.shape[0] > 1.5 * one.shape[0]  # a row for aux
    panel = boxes_panel(image, np.array([[4, 4, 20, 20, 1, 0]]), np.zeros((0, 6)), ["a"])
    assert panel.shape[1] == 2 * 64 + 4 and panel.shape[0] > 64


def test_due_every_n_epochs_and_the_last():
    cb = ValidationVisuals(every_n_epochs=3)
    def trainer(epoch, rank0=True):
        return SimpleNamespace(sanity_checking=False, is_global_zero=rank0, current_epoch=epoch, max_epochs=8)
    assert [e for e in range(8) if cb.due(trainer(e))] == [2, 5, 7]
    assert not cb.due(trainer(2, rank0=False))


def test_per_class_rows():
    result = EvalResult("val", {}, per_class={"a": 0.25, "b": -1.0}, per_class_map50={"a": 0.5, "b": -1.0})
    rows = per_class_rows(result)
    assert rows == [["a", 0.25, 0.5], ["b", -1.0, -1.0]]
    assert per_class_rows(None) == []
