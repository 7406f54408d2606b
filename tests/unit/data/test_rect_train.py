"""Rectangular training (official --rect): batches of similar aspect ratio with their own shape,
no mosaic, a seeded batch order per epoch, whole batches per DDP rank (same count on each), and
samples letterboxed to their batch's shape."""

from __future__ import annotations

import math

import numpy as np
from lightning.fabric.utilities.data import _replace_dunder_methods
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler

from tests.unit.data.conftest import make_coco
from yolov7_lightning.data.coco import load_coco
from yolov7_lightning.data.config import AugmentConfig
from yolov7_lightning.data.dataset import DetectionDataset
from yolov7_lightning.data.samplers import RectTrainBatchSampler


def test_rect_train_batches_shapes_order_and_ranks():
    sizes = np.random.default_rng(0).integers(50, 300, (11, 2))
    s = RectTrainBatchSampler(None, 3, sizes_hw=sizes, img_size=(320, 320), seed=1)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    kinds = []
    for batches in (e0, e1):
        assert sorted(k.index for b in batches for k in b) == list(range(11))
        for b in batches:
            assert len({k.shape for k in b}) == 1 and not any(k.mosaic for k in b)
            h, w = b[0].shape
            ar = [sizes[k.index][0] / sizes[k.index][1] for k in b]  # h / w of each image
            # official rule, pad 0: the smallest multiple of 32 that fits the batch's most extreme aspect;
            # a batch of landscape and portrait images together is square
            if max(ar) < 1:  # all landscape
                assert (h, w) == (math.ceil(max(ar) * 320 / 32) * 32, 320), (ar, h, w)
                kinds.append("landscape")
            elif min(ar) > 1:  # all portrait
                assert (h, w) == (320, math.ceil(320 / min(ar) / 32) * 32), (ar, h, w)
                kinds.append("portrait")
            else:  # mixed aspects (or exactly square images)
                assert (h, w) == (320, 320), (ar, h, w)
                kinds.append("mixed")
    assert {"landscape", "portrait", "mixed"} <= set(kinds)  # every branch of the rule is exercised
    assert [sorted(k.index for k in b) for b in e0] != [sorted(k.index for k in b) for b in e1]  # new order
    assert sorted(sorted(k.index for k in b) for b in e0) == sorted(sorted(k.index for k in b) for b in e1)
    got = []
    for rank in range(2):
        with _replace_dunder_methods(BatchSampler):
            dl = DataLoader(list(range(11)), batch_sampler=RectTrainBatchSampler(
                SequentialSampler(range(11)), 3, sizes_hw=sizes, img_size=(320, 320), seed=1), collate_fn=lambda x: x)
        new = _update_dataloader(dl, DistributedSampler(list(range(11)), num_replicas=2, rank=rank, shuffle=False))
        assert isinstance(new.batch_sampler, RectTrainBatchSampler) and new.batch_sampler.rank == rank
        new.batch_sampler.set_epoch(0)
        got.append(list(new.batch_sampler))
    assert len(got[0]) == len(got[1]) == 2  # 4 batches over 2 ranks
    assert sorted(k.index for b in got[0] + got[1] for k in b) == list(range(11))


def test_rect_train_samples_take_the_batch_shape(tmp_path):
    ann, images = make_coco(tmp_path, n=5)
    ds = DetectionDataset(load_coco(ann, images), (128, 128), train=True, augment=AugmentConfig(mosaic=1.0))
    s = RectTrainBatchSampler(None, 2, sizes_hw=ds.index.sizes_hw(), img_size=(128, 128), seed=0)
    s.set_epoch(0)
    for batch in s:
        for key in batch:
            sample = ds[key]
            assert tuple(sample["image"].shape[1:]) == key.shape  # letterboxed, never a mosaic
            labels = sample["labels"].numpy()
            assert (labels[:, 1:3] <= np.array(key.shape[::-1])).all()
