"""Typed schemas of the ``data`` and ``augment`` config groups and of ``yolov7-data``.

Registered in Hydra's ConfigStore by :func:`register_data_configs` (group ``schema``, names
``data``, ``augment``, ``data_tool``), so a typo in an override fails at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class AugmentConfig:
    """The ``augment`` group: YOLOv7 hyp values (data/hyp.scratch.*.yaml) plus our knobs.

    Probabilities: ``mosaic`` (per sample), ``mosaic9`` (share of 9-image mosaics, hard-coded 0.2
    officially), ``mixup`` (inside the mosaic branch), ``paste_in``, ``flipud``, ``fliplr``.
    ``close_mosaic``: no mosaic (nor mixup) during the last N epochs (0: never switched off).
    ``enabled: false`` is plain letterbox training (the ``none`` option).
    """

    enabled: bool = True
    mosaic: float = 1.0
    mosaic9: float = 0.2
    mixup: float = 0.15
    paste_in: float = 0.15
    degrees: float = 0.0
    translate: float = 0.2
    scale: float = 0.9
    shear: float = 0.0
    perspective: float = 0.0
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    flipud: float = 0.0
    fliplr: float = 0.5
    close_mosaic: int = 0


@dataclass
class SourceConfig:
    """Where the images and labels come from.

    kind ``shapes``: generated into ``root`` (null: the user cache dir) with the ``shapes_*`` fields.
    kind ``coco``: ``splits.<name> = {images: dir, annotations: json}`` relative to ``root``.
    kind ``yolo``: ``splits.<name> = images dir`` relative to ``root``; ``names`` the classes.
    Split names: train, val, test (test falls back to val).
    """

    kind: str = "shapes"
    root: Optional[str] = None
    splits: dict[str, Any] = field(default_factory=dict)
    names: Optional[list[str]] = None  # yolo: the class names; null: class0..classN from the labels
    verify_images: bool = True
    num_train: int = 2000
    num_val: int = 200
    image_size: int = 320
    seed: int = 0
    generate_workers: int = 2
    min_size: int = 8         # shapes: smallest object side (px)
    max_size: float = 0.0     # shapes: largest object side (px); 0: half the image
    max_objects: int = 8      # shapes: objects per image, up to
    shape_classes: int = 5    # shapes: the first N classes (1: one class)


@dataclass
class DataConfig:
    """The ``data`` group: a ``YoloDataModule`` (the commands pass ``augment`` from the ``augment`` group,
    ``stride`` from the network and, for training, ``seed``: the run's top-level ``seed``)."""

    _target_: str = "yolov7_lightning.data.YoloDataModule"
    source: SourceConfig = field(default_factory=SourceConfig)
    img_size: Any = 640  # int or [height, width]
    batch_size: int = 16
    val_batch_size: Optional[int] = None  # null: 2x batch_size (official)
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    shuffle: bool = True
    cache_gb: float = 0.0
    rect_val: bool = True
    rect_pad: float = 0.5
    transfer_uint8: bool = False
    single_cls: bool = False  # official --single-cls: every box is class 0 ('item')
    rect: bool = False        # official --rect: training batches of similar aspect ratio, no mosaic
    image_weights: bool = False  # official --image-weights: draw training images by class rarity


@dataclass
class DataToolConfig:
    """``yolov7-data``: ``action`` in shapes | yolo2coco | anchors (the ``data`` group, ``variant``,
    ``weights``, ``anchors``, ``anchor_t``, ``seed``, ``format``: the autoanchor check of a dataset)."""

    action: str = "shapes"  # shapes | yolo2coco | anchors
    out: Optional[str] = None
    source: SourceConfig = field(default_factory=SourceConfig)  # action=shapes: the dataset generated
    images: Optional[str] = None  # action=yolo2coco: the images folder
    names: Optional[list[str]] = None
    data: Any = None
    variant: str = "yolov7-tiny"  # action=anchors: the model whose anchors are checked
    weights: Optional[str] = None  # action=anchors: a checkpoint (this project's or an official .pt) whose anchors
    anchors: Any = "auto"  # action=anchors: auto (k-means + evolution when BPR < 0.98) | keep | [[w,h, ...], ...]
    anchor_t: float = 4.0
    seed: int = 0
    format: str = "text"  # text | json (one JSON object)


def register_data_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="schema", name="data", node=DataConfig)
    cs.store(group="schema", name="augment", node=AugmentConfig)
    cs.store(name="data_tool_schema", node=DataToolConfig)
