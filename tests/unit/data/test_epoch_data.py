"""Each training epoch's data, set on the data side (data/epoch_data.py): the sampler's epoch (the true
one after a resume, where Lightning alone hands 0), close-mosaic from the run length, and the image
weights from the LightningModule's per-class mAPs (kept in its checkpoints)."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from tests.unit.data.conftest import make_coco
from yolov7_lightning.data import YoloDataModule
from yolov7_lightning.data.config import AugmentConfig
from yolov7_lightning.data.epoch_data import TrainEpochData, set_train_epoch
from yolov7_lightning.data.image_weights import class_counts, epoch_image_weights

MAPS = [0.5, 0.0, 0.25, 0.75]  # per-class mAPs of the 4 classes of make_coco


def datamodule(root, **kw) -> YoloDataModule:
    ann, images = make_coco(root, n=8)
    split = {"images": images.name, "annotations": ann.name}
    kw.setdefault("augment", AugmentConfig(mosaic=1.0, close_mosaic=2))
    return YoloDataModule(source={"kind": "coco", "root": str(root), "splits": {"train": split, "val": split}},
                          img_size=64, batch_size=2, **kw)


def test_set_train_epoch_sets_epoch_close_mosaic_and_image_weights(tmp_path):
    dm = datamodule(tmp_path, image_weights=True)
    sampler = dm.train_dataloader().batch_sampler
    assert sampler.mosaic_off_epoch is None and sampler.weights is None  # nothing read from a trainer
    set_train_epoch(sampler, dm, epoch=3, max_epochs=5, class_maps=MAPS)
    counts = class_counts(dm.dataset("train").index, 4)
    assert sampler.epoch == 3 and sampler.mosaic_off_epoch == 3  # the last 2 of 5 epochs without mosaic
    np.testing.assert_array_equal(sampler.weights, epoch_image_weights(counts, MAPS))
    assert not any(k.mosaic for b in sampler for k in b)
    set_train_epoch(sampler, dm, epoch=2, max_epochs=5, class_maps=None)  # before the first validation
    np.testing.assert_array_equal(sampler.weights, epoch_image_weights(counts, None))
    assert sampler.epoch == 2 and all(k.mosaic for b in sampler for k in b)
    with pytest.raises(ValueError, match="3 per-class mAPs for 4 classes"):
        set_train_epoch(sampler, dm, epoch=2, max_epochs=5, class_maps=MAPS[:3])
    assert dm.mosaic_off_epoch(None) is None and dm.mosaic_off_epoch(-1) is None and dm.mosaic_off_epoch(1) == 0
    # a time budget's fitted closing epochs replace augment.close_mosaic (0: mosaic all along)
    assert dm.mosaic_off_epoch(10, close_mosaic=3) == 7 and dm.mosaic_off_epoch(10, close_mosaic=0) is None
    set_train_epoch(sampler, dm, epoch=2, max_epochs=8, class_maps=None, close_mosaic=3)
    assert sampler.mosaic_off_epoch == 5
    assert datamodule(tmp_path / "b", augment=AugmentConfig(close_mosaic=0)).mosaic_off_epoch(5) is None


class Tiny(L.LightningModule):
    """One weight; keeps ``class_maps`` in its checkpoints as YOLOv7Module does; records each epoch's
    sampler state and the images it drew."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.class_maps = None
        self.seen: dict[int, dict] = {}

    def on_train_epoch_start(self):  # after the callbacks' hook
        s = self.trainer.train_dataloader.batch_sampler
        self.seen[self.current_epoch] = {"epoch": s.epoch, "mosaic_off": s.mosaic_off_epoch,
                                         "weights": None if s.weights is None else s.weights.copy(), "ids": []}

    def training_step(self, batch, batch_idx):
        self.seen[self.current_epoch]["ids"] += [m.image_id for m in batch["meta"]]
        return (self.w * batch["images"].mean()).sum()

    def on_train_epoch_end(self):
        self.class_maps = [m * (self.current_epoch + 1) / 4 for m in MAPS]  # "the validation" of this epoch

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["class_maps"] = self.class_maps

    def on_load_checkpoint(self, checkpoint):
        self.class_maps = checkpoint["class_maps"]


def fit(dm, epochs: int, ckpt_path=None, callbacks=True) -> tuple[Tiny, L.Trainer]:
    module = Tiny()
    trainer = L.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=[TrainEpochData()] if callbacks else [])
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module, trainer


def test_a_resumed_run_draws_the_epochs_of_a_straight_run(tmp_path):
    dm = datamodule(tmp_path, image_weights=True, augment=AugmentConfig(mosaic=1.0, close_mosaic=1))
    straight, _ = fit(dm, 3)
    assert [straight.seen[e]["epoch"] for e in range(3)] == [0, 1, 2]
    assert [straight.seen[e]["mosaic_off"] for e in range(3)] == [2, 2, 2]
    counts = class_counts(dm.dataset("train").index, 4)
    np.testing.assert_array_equal(straight.seen[0]["weights"], epoch_image_weights(counts, None))
    np.testing.assert_array_equal(straight.seen[2]["weights"], epoch_image_weights(counts, [m / 2 for m in MAPS]))

    _, first = fit(dm, 1)
    first.save_checkpoint(tmp_path / "e0.ckpt")
    resumed, _ = fit(dm, 3, ckpt_path=tmp_path / "e0.ckpt")
    assert sorted(resumed.seen) == [1, 2]
    for e in (1, 2):  # the true epoch, the class mAPs of the checkpoint, the same draw
        assert resumed.seen[e]["epoch"] == e
        np.testing.assert_array_equal(resumed.seen[e]["weights"], straight.seen[e]["weights"])
        assert resumed.seen[e]["ids"] == straight.seen[e]["ids"]
    assert straight.seen[1]["ids"] != straight.seen[2]["ids"]  # the epochs differ: the comparison can fail

    without, _ = fit(dm, 3, ckpt_path=tmp_path / "e0.ckpt", callbacks=False)  # why the callback sets it
    assert without.seen[1]["epoch"] == 0 and without.seen[1]["mosaic_off"] is None
