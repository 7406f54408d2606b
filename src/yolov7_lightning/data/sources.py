"""Turn a ``source`` config (kind shapes | coco | yolo) into one :class:`DatasetIndex` per split."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .coco import load_coco
from .config import SourceConfig
from .records import DatasetError, DatasetIndex
from .shapes import ShapesSpec, ensure_shapes
from .yolo_txt import load_yolo

KINDS = ("shapes", "coco", "yolo")


def as_source(cfg) -> SourceConfig:
    """Accept a SourceConfig, a dict or a DictConfig (unknown keys are an error)."""
    if isinstance(cfg, SourceConfig):
        return cfg
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    unknown = set(cfg) - set(SourceConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown data.source keys {sorted(unknown)}")
    return SourceConfig(**cfg)


def shapes_spec(src: SourceConfig) -> ShapesSpec:
    return ShapesSpec(num_train=src.num_train, num_val=src.num_val, image_size=src.image_size, seed=src.seed,
                      min_size=src.min_size, max_objects=src.max_objects, max_size=float(src.max_size),
                      num_classes=src.shape_classes)


def split_index(src: SourceConfig, split: str) -> DatasetIndex:
    """Index of ``split`` (train | val | test); test falls back to val when not configured."""
    if src.kind not in KINDS:
        raise ValueError(f"unknown data.source.kind {src.kind!r}; valid: {', '.join(KINDS)}")
    if src.kind == "shapes":
        root = ensure_shapes(shapes_spec(src), src.root, src.generate_workers)
        name = "train" if split == "train" else "val"
        return load_coco(root / "annotations" / f"instances_{name}.json", root / "images" / name, src.verify_images)
    splits = dict(src.splits or {})
    if split == "test" and not splits.get("test"):
        split = "val"
    entry = splits.get(split)
    if not entry:
        raise DatasetError(f"data.source.splits has no {split!r} entry")
    base = Path(src.root or ".")
    if src.kind == "coco":
        return load_coco(base / entry["annotations"], base / entry["images"], src.verify_images)
    return load_yolo(base / entry, src.names, src.verify_images)


def predict_index(src: SourceConfig, names: list[str] | None) -> DatasetIndex:
    """Unlabelled folder ``source.predict`` (images only), or the test split."""
    if src.predict:
        return load_yolo(Path(src.predict), names, src.verify_images)
    return split_index(src, "test")
