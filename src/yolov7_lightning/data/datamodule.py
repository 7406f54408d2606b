"""``YoloDataModule``: train / val / test loaders producing the Batch contract. What changes from one
training epoch to the next (order, image weights, close-mosaic) is set by :class:`.epoch_data.TrainEpochData`
from what this module says (:meth:`YoloDataModule.mosaic_off_epoch`, :meth:`YoloDataModule.image_weights_for`).
Prediction (images, videos, streams) does not go through a DataModule: ``yolov7-predict``, ``eval/detector.py``."""

from __future__ import annotations

import dataclasses
import logging
from functools import partial

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, SequentialSampler

from ..errors import ConfigError
from .collate import collate
from .config import AugmentConfig, DataConfig
from .dataset import DetectionDataset
from .image_io import ImageCache
from .image_weights import class_counts, epoch_image_weights
from .records import DatasetError, single_class
from .samplers import RectBatchSampler, RectTrainBatchSampler, TrainBatchSampler
from .sources import as_source, first_class_difference, split_index, yolo_class_count

log = logging.getLogger(__name__)


def as_augment(cfg) -> AugmentConfig | None:
    if cfg is None or isinstance(cfg, AugmentConfig):
        return cfg
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return AugmentConfig(**cfg)


def as_hw(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def check_loader_settings(img_size, batch_size: int, val_batch_size: int | None, num_workers: int, stride: int) -> None:
    """Values no loader can work with stop at start-up, naming the key (a zero batch size used to
    end in a ZeroDivisionError)."""
    if batch_size < 1:
        raise ConfigError(f"data.batch_size={batch_size}: must be >= 1")
    if val_batch_size is not None and val_batch_size < 1:
        raise ConfigError(f"data.val_batch_size={val_batch_size}: must be >= 1 (or null: 2 x data.batch_size)")
    if num_workers < 0:
        raise ConfigError(f"data.num_workers={num_workers}: must be >= 0 (0: load in the main process)")
    sides = as_hw(img_size)
    if min(sides) <= 0 or any(s % stride for s in sides):
        raise ConfigError(f"data.img_size={img_size}: must be a positive multiple of the max stride {stride}")


class YoloDataModule(L.LightningDataModule):
    """Data for YOLOv7 training and evaluation. The defaults are the ``data`` group's
    (:class:`.config.DataConfig`); ``seed`` and ``stride`` are given by the commands (the run's
    ``seed``, the network's max stride).

    Args:
        source: :class:`config.SourceConfig` (or dict): shapes | coco | yolo and where.
        augment: :class:`config.AugmentConfig` (or dict) for training; ``None`` = no augmentation.
        img_size: network input, int or (height, width); any multiple of the stride.
        batch_size / val_batch_size: per process; validation defaults to 2 x batch_size.
        num_workers, pin_memory, persistent_workers: ``DataLoader`` options.
        seed: drives the training order and every augmentation draw (reproducible for any workers).
        shuffle: shuffle training (the official single-GPU loader does not).
        cache_gb: decoded-image RAM cache bound per split (0: off), filled in ``setup``.
        rect_val: rectangular evaluation batches; stride, rect_pad: their shape rule.
        transfer_uint8: loaders yield uint8 images, turned into float32 [0,1] after device transfer.
        single_cls: train and evaluate every box as one class (official ``--single-cls``).
        rect: rectangular training batches, no mosaic (official ``--rect``).
        image_weights: draw training images by class rarity and per-class mAP (official ``--image-weights``).

    Per epoch (through :class:`.epoch_data.TrainEpochData`): :meth:`mosaic_off_epoch` (``augment.close_mosaic``)
    and :meth:`image_weights_for` (the last validation's per-class mAPs).
    """

    def __init__(self, source=None, augment=None, img_size=DataConfig.img_size, batch_size: int = DataConfig.batch_size,
                 val_batch_size: int | None = DataConfig.val_batch_size, num_workers: int = DataConfig.num_workers,
                 pin_memory: bool = DataConfig.pin_memory, persistent_workers: bool = DataConfig.persistent_workers,
                 seed: int = 0, shuffle: bool = DataConfig.shuffle, cache_gb: float = DataConfig.cache_gb,
                 rect_val: bool = DataConfig.rect_val, stride: int = 32, rect_pad: float = DataConfig.rect_pad,
                 transfer_uint8: bool = DataConfig.transfer_uint8, single_cls: bool = DataConfig.single_cls,
                 rect: bool = DataConfig.rect, image_weights: bool = DataConfig.image_weights) -> None:
        super().__init__()
        check_loader_settings(img_size=img_size, batch_size=batch_size, val_batch_size=val_batch_size,
                              num_workers=num_workers, stride=stride)
        self.source = as_source(source or {})
        self.augment = as_augment(augment)
        self.img_size = as_hw(img_size)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or 2 * batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.seed, self.shuffle, self.cache_bytes = seed, shuffle, int(cache_gb * 2**30)
        self.rect_val, self.stride, self.rect_pad = rect_val, stride, rect_pad
        self.transfer_uint8 = transfer_uint8
        self.single_cls = single_cls
        self.rect = rect
        self.image_weights = image_weights
        if rect and image_weights:
            raise ConfigError("data.rect and data.image_weights exclude each other (as the official --rect and "
                              "--image-weights): choose one")
        self.datasets: dict[str, DetectionDataset] = {}
        self._read_indexes: dict = {}  # split -> DatasetIndex as read, for the class-list check
        self._train_counts: np.ndarray | None = None  # [n_images, nc] boxes per class (image weights)

    # ---- datasets ------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.source.kind == "shapes":  # generate once, on one process
            split_index(self.source, "val")

    def dataset(self, split: str) -> DetectionDataset:
        """The dataset of ``split`` (train | val | test), built and reported on first use."""
        if split not in self.datasets:
            index = split_index(self._class_source(), split)
            self._check_classes(split, index)
            self._read_indexes[split] = index  # as read (before single_cls): what the splits are compared on
            index.report.log_once()
            if self.single_cls:
                index = single_class(index)
            ds = DetectionDataset(index, self.img_size, train=split == "train", augment=self.augment)
            if self.cache_bytes > 0:
                cache = ds.fill_cache(ImageCache(self.cache_bytes))
                log.info("%s: cached %d/%d decoded images (%.2f GB)", split, len(cache), len(ds), cache.nbytes / 2**30)
            self.datasets[split] = ds
        return self.datasets[split]

    def _class_source(self):
        """The source with one class list for every split: ``data=yolo`` without ``names`` counts the
        classes over the labels of all splits (not only the split being read)."""
        if self.source.kind != "yolo" or self.source.names:
            return self.source
        if not hasattr(self, "_yolo_names"):
            self._yolo_names = [f"class{i}" for i in range(yolo_class_count(self.source))]
        return dataclasses.replace(self.source, names=self._yolo_names or None)

    def _check_classes(self, split: str, index) -> None:
        """Every labelled split must have the same class list (id and name at each position); a class
        without boxes in a split is worth a warning (its AP is undefined there)."""
        for other_split, other in self._read_indexes.items():
            if other is index or self.source.names:
                continue  # with data.source.names every split is mapped onto that one list
            (sa, a), (sb, b) = sorted([(other_split, other), (split, index)],
                                      key=lambda p: ("train", "val", "test").index(p[0]))
            diff = first_class_difference(a, b)
            if diff:
                raise DatasetError(
                    f"the class lists of {sa} ({a.report.source}) and {sb} ({b.report.source}) differ at {diff}; "
                    "give data.source.names=[...] to map categories by name, or fix the files")
            break
        present = {int(c) for r in index.records for c in r.classes}
        empty = [n for i, n in enumerate(index.names) if i not in present]
        if empty and index.records:
            log.warning("%s (%s): no boxes of %d class(es): %s", index.report.source, split, len(empty),
                        ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else ""))
    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
        for split in wanted.get(stage, ("train", "val")):
            self.dataset(split)

    @property
    def names(self) -> list[str]:
        return self.dataset("val").names

    @property
    def category_ids(self) -> list[int]:
        """Contiguous class id -> original dataset category id."""
        return self.dataset("val").category_ids

    # ---- loaders -------------------------------------------------------------------------------
    def _loader(self, ds: DetectionDataset, batch_sampler) -> DataLoader:
        return DataLoader(ds, batch_sampler=batch_sampler, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.persistent_workers,
                          collate_fn=partial(collate, float_images=not self.transfer_uint8))

    # ---- per training epoch (set by TrainEpochData at each epoch start) ---------------------------
    def mosaic_off_epoch(self, max_epochs: int | None, close_mosaic: int | None = None) -> int | None:
        """The first epoch without mosaic (and mixup) in a run of ``max_epochs``: the last
        ``close_mosaic`` epochs (default ``augment.close_mosaic``; a time budget fits it to the run);
        ``None``: mosaic all along."""
        n = close_mosaic if close_mosaic is not None else (self.augment.close_mosaic if self.augment else 0)
        if not n or not max_epochs or max_epochs < 0:
            return None
        return max(0, max_epochs - n)

    def image_weights_for(self, class_maps: list[float] | None) -> np.ndarray:
        """Per-image sampling weights of the training set (official ``--image-weights``) from the
        per-class mAPs of the last validation (``None``: before the first)."""
        if self._train_counts is None:
            ds = self.dataset("train")
            self._train_counts = class_counts(ds.index, len(ds.names))
        return epoch_image_weights(self._train_counts, class_maps)

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        if self.rect:
            return self._loader(ds, RectTrainBatchSampler(SequentialSampler(ds), self.batch_size, False,
                                                          sizes_hw=ds.index.sizes_hw(), img_size=self.img_size,
                                                          seed=self.seed, shuffle=self.shuffle, stride=self.stride))
        sampler = TrainBatchSampler(SequentialSampler(ds), self.batch_size, False, dataset_len=len(ds),
                                    img_size=self.img_size, seed=self.seed, shuffle=self.shuffle,
                                    image_weights=self.image_weights)
        return self._loader(ds, sampler)

    def _eval_loader(self, split: str) -> DataLoader:
        ds = self.dataset(split)
        sampler = RectBatchSampler(SequentialSampler(ds), self.val_batch_size, False, sizes_hw=ds.index.sizes_hw(),
                                   img_size=self.img_size, rect=self.rect_val, stride=self.stride, pad=self.rect_pad)
        return self._loader(ds, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        """Move the tensors; ``meta`` (frozen dataclasses) stays on the host."""
        moved = {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        return {**batch, **moved}

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.transfer_uint8 and batch["images"].dtype == torch.uint8:
            batch["images"] = batch["images"].float().div_(255)
        return batch
