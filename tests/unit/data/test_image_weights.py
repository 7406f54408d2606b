"""Image weights (official --image-weights): the official formulas on a hand-worked example, a
seeded weighted draw per epoch identical across ranks, and the per-class mAPs kept in checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from yolov7_lightning.data.image_weights import class_weights, epoch_image_weights
from yolov7_lightning.data.samplers import TrainBatchSampler

# 4 images, 2 classes: [2 x c0], [1 x c1], [c0 + c1], [no boxes]
COUNTS = np.array([[2, 0], [0, 1], [1, 1], [0, 0]], np.float64)


def test_official_weights_by_hand():
    # class totals 3 and 2 -> inverse 1/3, 1/2 -> normalised 0.4, 0.6
    assert np.allclose(class_weights(COUNTS), [0.4, 0.6])
    # x (1 - 0)^2 / 2 -> 0.2, 0.3 per box: images 0.4, 0.3, 0.5, 0
    assert np.allclose(epoch_image_weights(COUNTS), [0.4, 0.3, 0.5, 0.0])
    # mAP 0.5 for class 0, 0 for class 1: class 0 x 0.25 -> 0.05, 0.3
    assert np.allclose(epoch_image_weights(COUNTS, [0.5, 0.0]), [0.1, 0.3, 0.35, 0.0])
    with pytest.raises(ValueError, match="3 per-class mAPs for 2 classes"):
        epoch_image_weights(COUNTS, [0.1, 0.2, 0.3])


def sampler(rank=0, world=1, seed=0):
    class Dist:
        num_replicas, rank_ = world, rank

    d = Dist()
    d.rank = rank
    s = TrainBatchSampler(d, 2, dataset_len=4, img_size=(64, 64), seed=seed, image_weights=True)
    s.set_image_weights(epoch_image_weights(COUNTS))
    return s


def test_weighted_draw_is_seeded_identical_across_ranks_and_skips_empty_images():
    drawn = []
    for epoch in range(300):
        s = sampler()
        s.set_epoch(epoch)
        drawn += [k.index for b in s for k in b]
    freq = np.bincount(drawn, minlength=4) / len(drawn)
    assert freq[3] == 0 and np.allclose(freq[:3], [0.4 / 1.2, 0.3 / 1.2, 0.5 / 1.2], atol=0.03)
    one = sampler()
    one.set_epoch(5)
    full = [k.index for b in one for k in b]
    again = sampler()
    again.set_epoch(5)
    assert [k.index for b in again for k in b] == full  # the draw depends on (seed, epoch, weights) only
    ranks = []
    for r in range(2):
        s = sampler(rank=r, world=2)
        s.set_epoch(5)
        ranks.append([k.index for b in s for k in b])
    assert ranks[0] == full[0::2] and ranks[1] == full[1::2]  # one draw, split across ranks
    with pytest.raises(ValueError, match="image weights"):
        one.set_image_weights([0, 0, 0, 0])


def test_class_maps_travel_with_the_checkpoint():
    from tests.unit.training.test_freeze import module

    m = module(None)
    m.class_maps = [0.25, 0.5]
    ckpt = {}
    m.on_save_checkpoint(ckpt)
    other = module(None)
    other.on_load_checkpoint(ckpt)
    assert other.class_maps == [0.25, 0.5]
