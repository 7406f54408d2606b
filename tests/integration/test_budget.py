"""A run for a time budget on the shapes data (``schedule.minutes``), and what ``metrics.json`` keeps.

The budget is a few epochs of this machine, whatever its load: a one-epoch run is timed first (its
``train_seconds``: start-up, one epoch with its validation and checkpoints, the export) and the
budgeted run gets three times that, and at least ``MIN_BUDGET``. The run must fit its epochs to the budget (fewer than the cap),
run exactly the epochs it planned, end with the schedule's last learning rate (linear: lr0 x lrf, in
the logged learning rates) and the last fitted close-mosaic epochs without mosaic, and end within the
budget plus the stated overshoot.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from tests.helpers import run_cli
from tests.integration.test_train import SMALL
from yolov7_lightning.cli import train as train_cli

LR0, LRF, CAP, CLOSE = 0.01, 0.1, 400, 80
MIN_BUDGET = 30.0  # seconds: the end's timing noise (export, a checkpoint) stays well inside the overshoot allowed
RUN = [*SMALL, "data.source.num_train=8", "data.source.num_val=2", "data.source.image_size=64", "data.img_size=64",
       "visuals.enabled=false", "+trainer.enable_progress_bar=false", f"optim.lr0={LR0}", "schedule.kind=linear",
       f"schedule.lrf={LRF}", f"schedule.epochs={CAP}", f"augment.close_mosaic={CLOSE}"]


def train(tmp: Path, name: str, *overrides: str) -> tuple[Path, str]:
    out = tmp / name
    code, stdout, stderr = run_cli(train_cli.main, f"hydra.run.dir={out}", f"data.source.root={tmp / 'shapes'}",
                                   *RUN, *overrides)
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    return out, stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("budget")
    one, one_out = train(tmp, "one_epoch", "schedule.epochs=1")
    seconds = json.loads((one / "metrics.json").read_text())["train_seconds"]
    minutes = round(max(3 * seconds, MIN_BUDGET) / 60, 4)
    budgeted, out = train(tmp, "budgeted", f"schedule.minutes={minutes}")
    return {"one": (one, one_out), "budgeted": (budgeted, out), "budget": 60 * minutes, "minutes": minutes}


def logged_lrs(run: Path) -> list[float]:
    with open(run / "logs" / "version_0" / "metrics.csv") as f:
        return [float(r["lr"]) for r in csv.DictReader(f) if r.get("lr")]


def test_budgeted_run_fits_its_schedule_to_the_budget(runs):
    run, stdout = runs["budgeted"]
    metrics = json.loads((run / "metrics.json").read_text())
    b = metrics["budget"]
    assert b["seconds"] == pytest.approx(runs["budget"]) and b["cap_epochs"] == CAP
    planned = b["planned_epochs"]
    assert 2 <= planned < CAP, b  # fitted to the budget, not the configured cap
    assert b["run_epochs"] == planned == metrics["epochs"] and b["finished"] is True, b
    # the schedule ran to its end: the last logged learning rate is linear's last value, lr0 x lrf
    lrs = logged_lrs(run)
    assert lrs[-1] == pytest.approx(LR0 * LRF, rel=1e-6) and lrs[0] == pytest.approx(LR0, rel=1e-6)
    # close-mosaic scaled with the plan (80 of 400 epochs: a fifth, at least one): the last ones without mosaic
    close = max(1, round(CLOSE * planned / CAP))
    assert b["close_mosaic"] == close
    # mosaic on, then off to the end: the fitted count of epochs without it, or fewer where the plan shrank
    # after the closing epochs had begun (epochs of a fraction of a second re-plan by several at a time)
    mosaic = [e["mosaic"] for e in b["epochs_log"]]
    off = mosaic.count(False)
    assert 1 <= off <= close and mosaic == [True] * (planned - off) + [False] * off, b["epochs_log"]
    assert [e["epoch"] for e in b["epochs_log"]] == list(range(planned))
    # within the budget and the stated overshoot (one mean epoch or 5 % of the budget), export included
    allowed = max(b["epoch_seconds"], 0.05 * b["seconds"])
    assert b["allowed_overshoot_seconds"] == pytest.approx(allowed)
    assert metrics["train_seconds"] <= b["seconds"] + allowed + 0.5, b
    assert b["elapsed_seconds"] <= metrics["train_seconds"] + 0.1
    assert (run / "checkpoints" / "model.onnx").is_file() and b["export_trial_seconds"] > 0
    assert f"time budget {b['seconds']:.0f} s: {planned} of {planned} planned epochs" in stdout
    assert "time budget (epoch 0 done)" in (run / "app.log").read_text()  # each re-plan is logged


def test_a_finished_budgeted_run_resumed_stays_finished(runs):
    """metrics.json records the max_epochs the run was given (the cap), not the epochs its budget fitted:
    the one rule of run_folder.finished_run holds for a budgeted run too."""
    run, _ = runs["budgeted"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] is True and metrics["max_epochs"] == CAP > metrics["epochs"]
    _, stdout = train(run.parent, run.name, f"schedule.minutes={runs['minutes']}", "ckpt_path=auto")
    assert f"{run}: this run already finished ({metrics['epochs']} epochs)" in stdout
    assert json.loads((run / "metrics.json").read_text()) == metrics  # untouched


def test_plan_is_saved_in_the_checkpoint(runs):
    run, _ = runs["budgeted"]
    metrics = json.loads((run / "metrics.json").read_text())
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]["TimeBudget"]
    assert state["plan"]["epochs"] == metrics["budget"]["planned_epochs"]
    assert len(state["epoch_seconds"]) == metrics["epochs"]  # every epoch measured, the last one too
    # the time spent when the last checkpoint was written: what a resumed run carries on from
    assert metrics["budget"]["elapsed_seconds"] - metrics["budget"]["end_seconds"] - 1 <= state["elapsed"]
    assert state["elapsed"] <= metrics["budget"]["elapsed_seconds"]


@pytest.mark.parametrize("name", ["one", "budgeted"])
def test_metrics_record_best_and_last(runs, name):
    run, stdout = runs[name]
    m = json.loads((run / "metrics.json").read_text())
    ckpt = run / "checkpoints"
    assert m["top_level"] == "last"
    for key, file in (("best", "best.ckpt"), ("last", "last.ckpt")):
        record = m[key]
        assert record["checkpoint"] == str(ckpt / file)
        assert torch.load(ckpt / file, weights_only=True)["epoch"] == record["epoch"]  # the epoch the file holds
        assert set(record) >= {"epoch", "map", "map50", "map75", "map_small", "mar_100", "fitness", "num_images"}
        assert record["fitness"] == pytest.approx(0.1 * record["map50"] + 0.9 * record["map"])
    assert m["last"]["epoch"] == m["epochs"] - 1
    assert m["best"]["fitness"] >= m["last"]["fitness"]
    for top, key in (("map", "map"), ("map50", "map50"), ("fitness", "fitness"), ("val_images", "num_images")):
        assert m[top] == m["last"][key]
    best, last = m["best"], m["last"]
    numbers = lambda r: f"mAP@.5 {r['map50']:.4f}  mAP@.5:.95 {r['map']:.4f}"  # noqa: E731
    if best["epoch"] == last["epoch"]:
        assert f"best = last (epoch {last['epoch']}): {numbers(last)}" in stdout
    else:
        assert f"best epoch {best['epoch']}: {numbers(best)} | last epoch {last['epoch']}: {numbers(last)}" in stdout
    assert math.isfinite(m["fitness"])
