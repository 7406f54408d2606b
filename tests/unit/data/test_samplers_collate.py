import numpy as np
import pytest
import torch
from lightning.fabric.utilities.data import _replace_dunder_methods
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler

from yolov7_lightning.data.collate import ImageMeta, collate
from yolov7_lightning.data.samplers import RectBatchSampler, TrainBatchSampler, rect_shapes


def _sample(h, w, labels):
    return {"image": torch.full((3, h, w), 255, dtype=torch.uint8), "labels": torch.tensor(labels, dtype=torch.float32).reshape(-1, 5),
            "meta": ImageMeta(7, "x.jpg", (h, w), (h, w))}


def test_collate_contract_non_square():
    batch = collate([_sample(64, 96, [[1, 10, 20, 4, 6], [2, 90, 60, 8, 8]]), _sample(64, 96, []), _sample(64, 96, [[0, 5, 5, 2, 2]])])
    assert batch["images"].shape == (3, 3, 64, 96) and batch["images"].dtype == torch.float32
    assert batch["images"].max() == 1.0
    assert batch["targets"].dtype == torch.float32
    assert batch["targets"].tolist() == [[0, 1, 10, 20, 4, 6], [0, 2, 90, 60, 8, 8], [2, 0, 5, 5, 2, 2]]
    assert [m.image_id for m in batch["meta"]] == [7, 7, 7]
    empty = collate([_sample(32, 32, [])])
    assert empty["targets"].shape == (0, 6)


class _Dist:
    def __init__(self, rank, world):
        self.rank, self.num_replicas = rank, world


def test_train_sampler_shuffles_per_epoch_and_splits_ranks():
    mk = lambda s, r=0, w=1: TrainBatchSampler(_Dist(r, w), 4, dataset_len=10, img_size=(64, 64), seed=s, mosaic_off_epoch=2)
    a, b = mk(0), mk(0)
    a.set_epoch(0), b.set_epoch(0)
    ea = [k for batch in a for k in batch]
    assert ea == [k for batch in b for k in batch]
    assert sorted(k.index for k in ea) == list(range(10)) and [k.index for k in ea] != list(range(10))
    a.set_epoch(1)
    assert [k.index for batch in a for k in batch] != [k.index for k in ea]
    a.set_epoch(2)
    assert all(not k.mosaic for batch in a for k in batch) and all(k.mosaic for k in ea)
    ranks = [mk(0, r, 2) for r in range(2)]
    for s in ranks:
        s.set_epoch(0)
    keys = [[k for batch in s for k in batch] for s in ranks]
    assert len(keys[0]) == len(keys[1]) == 5 and len(ranks[0]) == 2
    assert sorted(k.index for ks in keys for k in ks) == list(range(10))  # a partition of the epoch


def test_rect_shapes_official_rule():
    sizes = np.array([[100, 200], [300, 100], [100, 100], [90, 200]])
    order, shapes = rect_shapes(sizes, 2, (640, 640))
    assert order.tolist() == [3, 0, 2, 1]  # sorted by h / w
    # batch 0: max aspect 0.5 -> (0.5, 1); batch 1: min 1 -> (1, 1); ceil(x * 640 / 32 + 0.5) * 32
    assert shapes.tolist() == [[352, 672], [672, 672]]


def test_rect_batches_fixed_under_lightning_ddp_sampler_injection():
    sizes = np.random.default_rng(0).integers(50, 300, (11, 2))
    single = RectBatchSampler(None, 3, sizes_hw=sizes, img_size=(320, 320))
    everything = single.batches()
    got = []
    for rank in range(2):
        with _replace_dunder_methods(BatchSampler):  # what Lightning does around the *_dataloader hooks
            dl = DataLoader(list(range(11)), batch_sampler=RectBatchSampler(
                SequentialSampler(range(11)), 3, sizes_hw=sizes, img_size=(320, 320)), collate_fn=lambda x: x)
        dist = DistributedSampler(list(range(11)), num_replicas=2, rank=rank, shuffle=False)
        new = _update_dataloader(dl, dist)
        assert isinstance(new.batch_sampler, RectBatchSampler) and new.batch_sampler.rank == rank
        got.append(list(new.batch_sampler))
    assert got[0] == everything[0::2] and got[1] == everything[1::2]  # whole batches, same shapes
    assert sorted(k.index for b in got[0] + got[1] for k in b) == list(range(11))  # no duplicates


def test_rect_sampler_gives_every_rank_a_batch_when_batches_are_fewer_than_ranks():
    sizes = np.array([[64, 96]] * 5 + [[96, 64]] * 3)  # 8 images, val batch 16: one batch on one process
    ranks = [RectBatchSampler(_Dist(r, 3), 16, sizes_hw=sizes, img_size=(64, 64)) for r in range(3)]
    seen = [k.index for s in ranks for batch in s for k in batch]
    assert all(len(s) >= 1 for s in ranks) and ranks[0].batch_size == 3
    assert sorted(seen) == list(range(8))  # every image once, none duplicated
    assert RectBatchSampler(_Dist(0, 1), 16, sizes_hw=sizes, img_size=(64, 64)).batch_size == 16  # unchanged alone


def test_rect_sampler_refuses_fewer_images_than_ranks():
    with pytest.raises(ValueError, match="2 images, fewer than the 4 DDP processes"):
        RectBatchSampler(_Dist(0, 4), 16, sizes_hw=np.array([[64, 64]] * 2), img_size=(64, 64))
