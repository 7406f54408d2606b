"""gather(): a no-op in one process; under a real 2-rank gloo group every rank gets every result."""

from __future__ import annotations

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from yolov7_lightning.eval import CocoEvaluator

from .conftest import CATEGORY_IDS, coco_gt, det, identity_meta

GT = coco_gt({i: (480, 640) for i in (1, 2, 3)}, [(i, 3, [10 * i, 10, 50, 50], 0) for i in (1, 2, 3)])
# rank 0 sees images 1, 2; rank 1 sees 3 and a padded repeat of 1 (a wrong box that must not count)
SHARDS = {0: {1: det([10, 10, 50, 50, 0.9, 0]), 2: det([20, 10, 50, 50, 0.8, 0])},
          1: {3: det([30, 10, 50, 50, 0.7, 0]), 1: det([300, 300, 50, 50, 0.95, 0])}}


def test_gather_is_a_no_op_in_one_process():
    assert not dist.is_initialized()
    ev = CocoEvaluator(GT, CATEGORY_IDS)
    ev.update(list(SHARDS[0].values()), [identity_meta(i) for i in SHARDS[0]])
    before = ev.results()
    ev.gather()
    assert ev.results() == before and ev.image_ids == [1, 2]


def _worker(rank: int, init_file: str, queue) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        ev = CocoEvaluator(GT, CATEGORY_IDS)
        ev.update(list(SHARDS[rank].values()), [identity_meta(i) for i in SHARDS[rank]])
        ev.gather()
        queue.put((rank, sorted(ev.image_ids), ev.num_detections, ev.compute()["map"]))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_gather_merges_all_ranks(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(str(tmp_path / "init"), queue), nprocs=2, start_method="spawn")
    got = sorted(queue.get() for _ in range(2))
    for rank, ids, n, m in got:
        assert ids == [1, 2, 3] and n == 3, rank  # the repeat of image 1 from rank 1 is dropped
        assert m == pytest.approx(1.0)
