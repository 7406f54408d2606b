"""metrics.json's best and last epochs: recorded with real Lightning checkpoint callbacks (a tiny
module whose validations give scripted numbers), kept across a resume, and the one result every
reader takes (top level, objective, W&B summary, final line)."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from yolov7_lightning.training.callbacks.records import EpochRecords
from yolov7_lightning.training.evaluation import EvalResult, hand_out
from yolov7_lightning.training.run_summary import (REPORTED, final_line, objective, reported, result_metrics,
                                                   run_metrics, wandb_summary)

MAPS = [0.30, 0.50, 0.40, 0.45, 0.46]  # per epoch: mAP@.5:.95 (mAP@.5 = mAP + 0.2): best at epoch 1


class Scripted(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def training_step(self, batch, batch_idx):
        return (self.w * batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        m = MAPS[self.current_epoch]
        result = EvalResult.from_metrics("val", {"map": m, "map50": m + 0.2, "num_images": 2, "per_class": {"a": m}})
        self.log("val/fitness", result.fitness)
        hand_out(self.trainer, self, result)  # as YOLOv7Module does at the end of each pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(2, 1)), batch_size=2)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(2, 1)), batch_size=2)


def fit(tmp, epochs, ckpt_path=None):
    best = ModelCheckpoint(dirpath=tmp, filename="best", monitor="val/fitness", mode="max", save_top_k=1,
                           enable_version_counter=False)
    last = ModelCheckpoint(dirpath=tmp, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    trainer = L.Trainer(max_epochs=epochs, callbacks=[best, last, EpochRecords(best, str(tmp / "last.ckpt"))],
                        logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=tmp)
    trainer.fit(Scripted(), ckpt_path=ckpt_path)
    return trainer


def fitness(m):
    return 0.1 * (m + 0.2) + 0.9 * m


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("records")
    first = fit(tmp, 3)
    first_metrics = {**run_metrics(first), "train_seconds": 1.0}
    saved = {name: torch.load(tmp / f"{name}.ckpt", weights_only=True)["callbacks"]["EpochRecords"]
             for name in ("best", "last")}
    resumed = fit(tmp, 5, ckpt_path=str(tmp / "last.ckpt"))
    return tmp, first_metrics, saved, {**run_metrics(resumed), "train_seconds": 2.0}


def test_best_and_last_records(runs):
    tmp, m, saved, _ = runs
    assert m["best"]["epoch"] == 1 and m["last"]["epoch"] == 2 and m["epochs"] == 3
    assert m["best"]["map"] == MAPS[1] and m["best"]["map50"] == pytest.approx(MAPS[1] + 0.2)
    assert m["best"]["fitness"] == pytest.approx(fitness(MAPS[1])) and m["best"]["num_images"] == 2
    assert m["best"]["checkpoint"] == str(tmp / "best.ckpt") == m["best_checkpoint"]
    assert m["last"]["checkpoint"] == str(tmp / "last.ckpt") == m["last_checkpoint"]
    assert m["last"]["per_class"] == {"a": MAPS[2]}
    # each checkpoint file holds the record of the epoch it was written at
    assert torch.load(tmp / "best.ckpt", weights_only=True)["epoch"] == 1 and saved["best"]["best"]["epoch"] == 1
    assert saved["last"]["last"]["epoch"] == 2 and saved["last"]["best"]["epoch"] == 1
    json.dumps(m)  # plain data


def test_top_level_is_the_reported_epoch(runs):
    _, m, _, _ = runs
    assert REPORTED == "last" and m["top_level"] == "last"
    chosen = m[m["top_level"]]
    assert (m["map"], m["map50"], m["fitness"], m["val_images"]) == (chosen["map"], chosen["map50"],
                                                                     chosen["fitness"], chosen["num_images"])
    assert m["map"] == MAPS[2] and reported(m) is chosen and objective(m) == pytest.approx(fitness(MAPS[2]))
    summary = wandb_summary(m)
    assert summary["map"] == MAPS[2] and summary["epoch"] == 2 and summary["top_level"] == "last"
    assert summary["best/map"] == MAPS[1] and summary["best/epoch"] == 1 and summary["last/fitness"] == m["fitness"]


def test_resumed_run_keeps_its_best(runs):
    _, _, _, m = runs
    # epochs 3 and 4 (0.45, 0.46) do not beat epoch 1 (0.50): best.ckpt still holds epoch 1, and so does the record
    assert m["best"]["epoch"] == 1 and m["best"]["map"] == MAPS[1] and m["last"]["epoch"] == 4 and m["epochs"] == 5


def test_final_line(runs):
    _, first, _, _ = runs
    line = final_line(first)
    assert line.startswith("best epoch 1: mAP@.5 0.7000  mAP@.5:.95 0.5000 | last epoch 2: mAP@.5 0.6000  "
                           "mAP@.5:.95 0.4000  in 1 s (3 epochs"), line
    same = result_metrics(first["last"], first["last"]) | {"train_seconds": 1.0, "epochs": 3}
    assert final_line(same).startswith("best = last (epoch 2): mAP@.5 0.6000  mAP@.5:.95 0.4000"), final_line(same)
    assert final_line(result_metrics(None, None)) == "no evaluation ran"


def test_older_metrics_files_report_their_top_level():
    old = {"map": 0.3, "map50": 0.5, "fitness": 0.32}
    assert reported(old) is old and objective(old) == 0.32
