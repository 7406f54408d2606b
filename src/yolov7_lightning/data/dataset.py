"""The torch ``Dataset``: a :class:`Pipeline` addressed by :class:`SampleKey`.

Samplers hand out keys rather than bare indices so that everything random about a sample (its
seed, whether mosaic is allowed this epoch, its rectangular batch shape) is decided in the main
process: results are identical for any number of workers, with or without persistent workers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..boxes import xyxy_to_cxcywh
from .collate import ImageMeta, Sample
from .config import AugmentConfig
from .image_io import ImageCache, decode_image, resize_to_fit
from .pipeline import Pipeline
from .records import DatasetIndex


class SampleKey(NamedTuple):
    """index into the dataset; seed of this draw; network input (H, W); mosaic allowed."""

    index: int
    seed: int
    shape: tuple[int, int]
    mosaic: bool = True


class DetectionDataset(Dataset):
    """Training (``train=True``: augmentation) or evaluation samples of one split.

    ``ds[i]`` (an int) uses seed ``i`` and the default ``img_size``; samplers pass a :class:`SampleKey`.
    Attributes: ``names``, ``category_ids`` (contiguous class -> original category id), ``index``.
    """

    def __init__(self, index: DatasetIndex, img_size: tuple[int, int], train: bool,
                 augment: AugmentConfig | None = None, cache: ImageCache | None = None) -> None:
        self.index = index
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.train = train
        self.pipeline = Pipeline(index, self.img_size, augment if train else None, cache)

    @property
    def names(self) -> list[str]:
        return self.index.names

    @property
    def category_ids(self) -> list[int]:
        return self.index.category_ids

    def __len__(self) -> int:
        return len(self.index)

    def fill_cache(self, cache: ImageCache) -> ImageCache:
        """Decode images into ``cache`` until its memory bound (main process, before workers start)."""
        for i, rec in enumerate(self.index.records):
            img = resize_to_fit(decode_image(rec.path), self.img_size, self.pipeline.aug is not None)
            if not cache.put(i, img):
                break
        self.pipeline.cache = cache
        return cache

    def __getitem__(self, key: int | SampleKey) -> Sample:
        if not isinstance(key, SampleKey):
            key = SampleKey(int(key), int(key), self.img_size)
        rec = self.index.records[key.index]
        if self.train:
            rng = np.random.default_rng(key.seed)
            img, boxes, classes = self.pipeline.train_sample(key.index, rng, key.mosaic,
                                                             None if key.mosaic else key.shape)
            meta = ImageMeta(rec.image_id, rec.path, (rec.height, rec.width), tuple(img.shape[:2]))
        else:
            img, boxes, classes, lb = self.pipeline.eval_sample(key.index, key.shape)
            meta = ImageMeta(rec.image_id, rec.path, lb.orig_hw, lb.input_hw, lb.ratio_hw, lb.pad_tl)
        labels = np.concatenate([classes.reshape(-1, 1).astype(np.float32), xyxy_to_cxcywh(boxes)], 1)
        image = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return Sample(image=image, labels=torch.from_numpy(labels), meta=meta)
