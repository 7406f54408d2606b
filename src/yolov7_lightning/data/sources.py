"""Turn a ``source`` config (kind shapes | coco | yolo) into one :class:`DatasetIndex` per split."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .coco import load_coco
from .config import SourceConfig
from .records import DatasetError, DatasetIndex
from .shapes import ShapesSpec, ensure_shapes
from .yolo_txt import find_images, label_path, load_yolo
from ..errors import ConfigError

KINDS = ("shapes", "coco", "yolo")


def as_source(cfg) -> SourceConfig:
    """Accept a SourceConfig, a dict or a DictConfig (unknown keys are an error)."""
    if isinstance(cfg, SourceConfig):
        return cfg
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    unknown = set(cfg) - set(SourceConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown data.source keys {sorted(unknown)}")
    return SourceConfig(**cfg)


def shapes_spec(src: SourceConfig) -> ShapesSpec:
    return ShapesSpec(num_train=src.num_train, num_val=src.num_val, image_size=src.image_size, seed=src.seed,
                      min_size=src.min_size, max_objects=src.max_objects, max_size=float(src.max_size),
                      num_classes=src.shape_classes)


def split_index(src: SourceConfig, split: str) -> DatasetIndex:
    """Index of ``split`` (train | val | test); test falls back to val when not configured."""
    if src.kind not in KINDS:
        raise ConfigError(f"unknown data.source.kind {src.kind!r}; valid: {', '.join(KINDS)}")
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
        return load_coco(base / entry["annotations"], base / entry["images"], src.verify_images, src.names)
    return load_yolo(base / entry, src.names, src.verify_images)


def yolo_class_count(src: SourceConfig) -> int:
    """``max class index + 1`` over the label files of every configured split (``data=yolo`` without
    ``names``): one class list for all splits. Lines that are not a valid class index are left to
    the loader, which skips and counts them."""
    base, top = Path(src.root or "."), -1
    for entry in dict(src.splits or {}).values():
        folder = base / entry
        if not folder.is_dir():
            continue
        for image in find_images(folder):
            lp = label_path(image, folder)
            if not lp.is_file():
                continue
            try:
                lines = lp.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            for line in lines:
                try:
                    value = float(line.split()[0])
                except (ValueError, IndexError):
                    continue
                if value == int(value) and value >= 0:
                    top = max(top, int(value))
    return top + 1


def first_class_difference(a: DatasetIndex, b: DatasetIndex) -> str | None:
    """The first position where two splits' class lists differ, as ``(id, name)`` pairs, or None."""
    pairs_a, pairs_b = list(zip(a.category_ids, a.names)), list(zip(b.category_ids, b.names))
    for i in range(max(len(pairs_a), len(pairs_b))):
        pa = pairs_a[i] if i < len(pairs_a) else "nothing"
        pb = pairs_b[i] if i < len(pairs_b) else "nothing"
        if pa != pb:
            return f"class {i}: {pa} vs {pb} ({len(pairs_a)} vs {len(pairs_b)} categories)"
    return None
