"""Under DDP every rank follows rank 0's plan: two CPU processes (gloo) whose own figures differ (rank 1
is given a third of the budget, as a rank with another clock would see) end with rank 0's plans,
re-plan by re-plan, and run the same epochs."""

from __future__ import annotations

import json
import time

import lightning as L
import torch

from yolov7_lightning.training.budget import TimeBudget
from yolov7_lightning.training.optim import LRLambda, ScheduleSpec, WarmUp


class Sleepy(L.LightningModule):
    """What the budget callback sets on a YOLOv7Module (schedule, LR lambda, warm-up, close-mosaic),
    three parameter groups, and epochs whose length depends on the rank."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = (torch.nn.Parameter(torch.ones(1)) for _ in range(3))
        self.schedule = ScheduleSpec(epochs=50, minutes=0.1, warmup_epochs=5.0)
        self.lr_lambda = LRLambda("linear", 0.1, 50)
        self.warmup = WarmUp(5.0)
        self.close_mosaic = None

    def training_step(self, batch, batch_idx):
        time.sleep(0.15)
        return (self.a + self.b + self.c).sum() * batch[0].sum()

    def configure_optimizers(self):
        return torch.optim.SGD([{"params": [self.a]}, {"params": [self.b]}, {"params": [self.c]}], lr=0.01)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 1)), batch_size=2)


class RankBudget(TimeBudget):
    """Rank 1 sees a third of the budget: planning on its own, it would fit fewer epochs."""

    def setup(self, trainer, pl_module, stage):
        super().setup(trainer, pl_module, stage)
        if trainer.global_rank == 1:
            self.budget /= 3


class Dump(L.Callback):
    def __init__(self, folder):
        self.folder = str(folder)

    def on_train_end(self, trainer, pl_module):
        budget = next(c for c in trainer.callbacks if isinstance(c, TimeBudget))
        record = {"history": budget.history, "max_epochs": trainer.max_epochs, "lr_epochs": pl_module.lr_lambda.epochs,
                  "warmup": pl_module.warmup.epochs, "budget": budget.budget}
        with open(f"{self.folder}/rank{trainer.global_rank}.json", "w") as f:
            json.dump(record, f)

    def teardown(self, trainer, pl_module, stage):
        # close the process group before the spawned rank exits: a gloo group left to the interpreter's
        # exit can abort the rank ("terminate called without an active exception", SIGABRT)
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def test_every_rank_follows_rank_0(tmp_path):
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=50, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        callbacks=[RankBudget(minutes=0.1), Dump(tmp_path)])
    trainer.fit(Sleepy())
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["budget"] == 6.0 and r1["budget"] == 2.0  # the ranks' own figures differ ...
    assert r0["history"] == r1["history"] and len(r0["history"]) >= 2  # ... and made rank 0's decisions
    planned = r0["history"][-1]["planned"]
    assert 2 <= planned < 50 and r0["max_epochs"] == r1["max_epochs"] == r0["lr_epochs"] == r1["lr_epochs"] == planned
    assert r0["warmup"] == r1["warmup"] == 5.0 * planned / 50
