"""Batch samplers that yield lists of :class:`SampleKey` and stay correct under DDP.

Both take the ``sampler`` Lightning injects (a ``DistributedSampler`` under DDP) only for its
``num_replicas`` and ``rank``, so Lightning's re-instantiation keeps their behaviour:

* :class:`TrainBatchSampler`: a fresh permutation per epoch from ``(seed, epoch)`` (with
  ``image_weights``: a weighted draw with replacement, weights set per epoch), split across
  ranks like ``DistributedSampler`` (padded to a multiple of the world size), per-sample seeds, and
  mosaic switched off from epoch ``mosaic_off_epoch``. In training, the epoch, the image weights and
  ``mosaic_off_epoch`` are set at each epoch start by :class:`.epoch_data.TrainEpochData`.
* :class:`RectTrainBatchSampler` (official ``--rect``): training batches of similar aspect ratio
  (the rectangular shapes of evaluation, pad 0), no mosaic; the batch order is shuffled per epoch
  from ``(seed, epoch)`` and batch k goes to rank k mod world (the list padded so every rank has as
  many batches).
* :class:`RectBatchSampler`: evaluation batches fixed on the whole sorted dataset (images sorted
  by aspect ratio, one letterbox shape per batch, official ``ceil(shape * size / stride + pad) *
  stride``); ranks receive whole batches (batch k -> rank k mod world), so a batch's shape never
  depends on the world size and nothing is duplicated. Only when there are fewer batches than
  ranks are the batches made smaller, so that every rank has one (Lightning requires it).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from torch.utils.data import BatchSampler, Sampler

from ..errors import UserError
from .dataset import SampleKey

log = logging.getLogger(__name__)


def _world(sampler) -> tuple[int, int]:
    return int(getattr(sampler, "num_replicas", 1)), int(getattr(sampler, "rank", 0))


class TrainBatchSampler(BatchSampler):
    """Shuffled (or ordered) training batches of keys; ``set_epoch`` (and ``set_image_weights``,
    ``set_mosaic_off_epoch``) before each epoch (:class:`.epoch_data.TrainEpochData`)."""

    def __init__(self, sampler: Sampler | None, batch_size: int, drop_last: bool = False, *, dataset_len: int,
                 img_size: tuple[int, int], seed: int = 0, shuffle: bool = True,
                 mosaic_off_epoch: int | None = None, image_weights: bool = False) -> None:
        self.sampler = sampler
        self.image_weights = image_weights  # the weights come per epoch through set_image_weights
        self.weights: np.ndarray | None = None
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.dataset_len = int(dataset_len)
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.seed, self.shuffle = int(seed), shuffle
        self.mosaic_off_epoch = mosaic_off_epoch
        self.epoch = 0
        self._explicit_epoch = False
        self.num_replicas, self.rank = _world(sampler)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._explicit_epoch = int(epoch), True

    def set_mosaic_off_epoch(self, epoch: int | None) -> None:
        """Mosaic (and mixup) off from ``epoch`` on (close-mosaic); ``None``: never off."""
        self.mosaic_off_epoch = None if epoch is None else int(epoch)

    def set_image_weights(self, weights: np.ndarray) -> None:
        """Per-image sampling weights of the coming epoch (official ``--image-weights``): the epoch
        draws ``dataset_len`` images with replacement, the same draw on every rank."""
        w = np.asarray(weights, np.float64).reshape(-1)
        if len(w) != self.dataset_len or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"image weights: {len(w)} finite non-negative weights with a positive sum expected "
                             f"for {self.dataset_len} images")
        self.weights = w

    def _per_rank(self) -> int:
        return math.ceil(self.dataset_len / self.num_replicas)

    def __len__(self) -> int:
        n = self._per_rank()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        epoch = self.epoch
        if not self._explicit_epoch:  # plain DataLoader use: a new order each pass
            self.epoch += 1
        rng = np.random.default_rng([self.seed, epoch])
        if self.image_weights and self.weights is not None:
            order = rng.choice(self.dataset_len, self.dataset_len, replace=True, p=self.weights / self.weights.sum())
        else:
            order = rng.permutation(self.dataset_len) if self.shuffle else np.arange(self.dataset_len)
        seeds = rng.integers(0, 2**62, self.dataset_len)  # seeds by position: the same on every rank
        total = self._per_rank() * self.num_replicas
        pos = np.resize(np.arange(self.dataset_len), total)[self.rank::self.num_replicas]
        mosaic = self.mosaic_off_epoch is None or epoch < self.mosaic_off_epoch
        keys = [SampleKey(int(order[p]), int(seeds[p]), self.img_size, mosaic) for p in pos]
        for b in range(len(self)):
            yield keys[b * self.batch_size:(b + 1) * self.batch_size]


def rect_shapes(sizes_hw: np.ndarray, batch_size: int, img_size: tuple[int, int], stride: int = 32,
                pad: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(order [n], shapes [n_batches, 2]): indices sorted by aspect h/w and each batch's (H, W)."""
    ar = sizes_hw[:, 0] / sizes_hw[:, 1]
    order = np.argsort(ar, kind="stable")
    ar = ar[order]
    nb = math.ceil(len(order) / batch_size)
    shapes = np.ones((nb, 2))
    for b in range(nb):
        a = ar[b * batch_size:(b + 1) * batch_size]
        lo, hi = a.min(), a.max()
        if hi < 1:
            shapes[b] = (hi, 1)
        elif lo > 1:
            shapes[b] = (1, 1 / lo)
    size = np.array(img_size, np.float64)
    return order, (np.ceil(shapes * size / stride + pad).astype(int) * stride)


class RectBatchSampler(BatchSampler):
    """Fixed evaluation batches (rectangular when ``rect``), whole batches per rank, in order."""

    def __init__(self, sampler: Sampler | None, batch_size: int, drop_last: bool = False, *, sizes_hw,
                 img_size: tuple[int, int], rect: bool = True, stride: int = 32, pad: float = 0.5) -> None:
        self.sampler = sampler
        self.batch_size, self.drop_last = int(batch_size), False
        self.sizes_hw = np.asarray(sizes_hw).reshape(-1, 2)
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.rect, self.stride, self.pad = rect, stride, pad
        self.num_replicas, self.rank = _world(sampler)
        n = len(self.sizes_hw)
        if n < self.num_replicas:
            raise UserError(f"the evaluation split has {n} images, fewer than the {self.num_replicas} DDP processes: "
                            "every process needs at least one image")
        if math.ceil(n / self.batch_size) < self.num_replicas:  # every rank needs a batch: smaller batches
            self.batch_size = math.ceil(n / self.num_replicas)
            log.warning("evaluation batch size %d -> %d so that each of the %d processes gets a batch of the %d images",
                        batch_size, self.batch_size, self.num_replicas, n)
        if rect:
            self.order, self.shapes = rect_shapes(self.sizes_hw, self.batch_size, self.img_size, stride, pad)
        else:
            self.order = np.arange(n)
            self.shapes = np.tile(self.img_size, (math.ceil(n / self.batch_size), 1))

    def batches(self) -> list[list[SampleKey]]:
        """Every batch of the whole dataset (all ranks)."""
        bs = self.batch_size
        return [[SampleKey(int(i), 0, (int(s[0]), int(s[1])), False) for i in self.order[b * bs:(b + 1) * bs]]
                for b, s in enumerate(self.shapes)]

    def __len__(self) -> int:
        return len(range(self.rank, len(self.shapes), self.num_replicas))

    def __iter__(self):
        yield from self.batches()[self.rank::self.num_replicas]


class RectTrainBatchSampler(TrainBatchSampler):
    """Rectangular training batches (official ``--rect``): fixed groups of similar aspect ratio, each
    with its own letterbox shape, no mosaic; per-sample seeds and the batch order from (seed, epoch)."""

    def __init__(self, sampler: Sampler | None, batch_size: int, drop_last: bool = False, *, sizes_hw,
                 img_size: tuple[int, int], seed: int = 0, shuffle: bool = True, stride: int = 32,
                 pad: float = 0.0) -> None:
        sizes_hw = np.asarray(sizes_hw).reshape(-1, 2)
        super().__init__(sampler, batch_size, drop_last, dataset_len=len(sizes_hw), img_size=img_size, seed=seed,
                         shuffle=shuffle)
        self.sizes_hw, self.stride, self.pad = sizes_hw, stride, pad
        self.order, self.shapes = rect_shapes(sizes_hw, self.batch_size, self.img_size, stride, pad)

    def __len__(self) -> int:
        return math.ceil(len(self.shapes) / self.num_replicas)

    def __iter__(self):
        epoch = self.epoch
        if not self._explicit_epoch:
            self.epoch += 1
        rng = np.random.default_rng([self.seed, epoch])
        batch_order = rng.permutation(len(self.shapes)) if self.shuffle else np.arange(len(self.shapes))
        seeds = rng.integers(0, 2**62, self.dataset_len)
        picked = np.resize(batch_order, len(self) * self.num_replicas)[self.rank::self.num_replicas]
        bs = self.batch_size
        for b in picked:
            shape = (int(self.shapes[b][0]), int(self.shapes[b][1]))
            yield [SampleKey(int(i), int(seeds[i]), shape, False) for i in self.order[b * bs:(b + 1) * bs]]
