"""Turn a ``source`` config (kind shapes | coco | yolo) into one :class:`DatasetIndex` per split."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .coco import load_coco
from .config import SourceConfig
from .records import DatasetError, DatasetIndex
from .shapes import ShapesSpec, ensure_shapes
from .yolo_txt import class_index, find_images, label_path, load_yolo
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
    the loader, which skips and counts them.

    A count the labels do not back is an error naming the file and line of the highest index: when
    fewer than half of the classes ``0..max`` have a box in any split (one stray ``1000`` among
    classes 0..9 would build a 1001-class model); ``data.source.names`` gives the count instead."""
    base, first_seen = Path(src.root or "."), {}  # class index -> (label file, line) of its first line
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
            for n, line in enumerate(lines, 1):
                try:
                    cls = class_index(float(line.split()[0]))
                except (ValueError, IndexError):
                    continue
                if cls is not None and cls not in first_seen:
                    first_seen[cls] = (lp, n)
    count = max(first_seen, default=-1) + 1
    if 2 * len(first_seen) < count:
        lp, n = first_seen[count - 1]
        used = sorted(first_seen)[:-1]
        raise DatasetError(f"{lp}, line {n}: class {count - 1} would make {count} classes, but only {len(first_seen)} "
                           f"of them have boxes (the others used: {_ranges(used)}); a stray index? Fix the line, or "
                           "give the class list: data.source.names=[name0, name1, ...] (lines beyond it are then "
                           "counted skips)")
    return count


def _ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5] -> '0..2, 5' (at most 10 parts)."""
    parts, start = [], None
    for i, c in enumerate(ids):
        start = c if start is None else start
        if i + 1 == len(ids) or ids[i + 1] != c + 1:
            parts.append(f"{start}..{c}" if c > start else str(c))
            start = None
    return ", ".join(parts[:10]) + (" ..." if len(parts) > 10 else "") or "none"


def first_class_difference(a: DatasetIndex, b: DatasetIndex) -> str | None:
    """The first position where two splits' class lists differ, as ``(id, name)`` pairs, or None."""
    pairs_a, pairs_b = list(zip(a.category_ids, a.names)), list(zip(b.category_ids, b.names))
    for i in range(max(len(pairs_a), len(pairs_b))):
        pa = pairs_a[i] if i < len(pairs_a) else "nothing"
        pb = pairs_b[i] if i < len(pairs_b) else "nothing"
        if pa != pb:
            return f"class {i}: {pa} vs {pb} ({len(pairs_a)} vs {len(pairs_b)} categories)"
    return None
