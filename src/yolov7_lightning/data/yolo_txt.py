"""YOLO text labels -> :class:`DatasetIndex`.

Layout: ``<root>/images/<split>/x.jpg`` with ``<root>/labels/<split>/x.txt`` (the ``images`` path
component is replaced by ``labels``). One object per line, normalised: ``cls xc yc w h`` (a box) or
``cls x1 y1 x2 y2 x3 y3 ...`` (a polygon, >= 3 points; its box is the polygon's extent). A missing
label file means a negative image. A malformed line skips the whole image (its labels would be
incomplete), counted in the report with file and line number; a box partly outside the image is
clipped to it and counted as a repair.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .coco import _probe_all
from .image_io import IMAGE_SUFFIXES
from .records import CLIPPED, DatasetError, DatasetIndex, ImageRecord, LoadReport, box_problem


def label_path(image: Path, image_root: Path) -> Path:
    """``.../images/a/b.jpg`` -> ``.../labels/a/b.txt`` (sibling ``labels`` of the last ``images``)."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def class_index(value: float) -> int | None:
    """A label line's first value as a class index: a finite whole number >= 0, else None."""
    return int(value) if math.isfinite(value) and value >= 0 and value == int(value) else None


def parse_label_file(path: Path, h: int, w: int, num_classes: int | None):
    """Parse one label file -> (boxes xyxy px, classes, segments px, line numbers of the boxes clipped
    to the image); raises ValueError('line N: ...')."""
    boxes, classes, segments, clipped_lines = [], [], [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise ValueError(f"line {n}: non-numeric value") from None
        if len(values) != 5 and (len(values) < 7 or len(values) % 2 == 0):
            raise ValueError(f"line {n}: expected 5 values or a class and >= 3 xy points, got {len(values)}")
        cls = class_index(values[0])
        if cls is None:
            raise ValueError(f"line {n}: class {values[0]:g} is not a class index (a whole number >= 0)")
        if num_classes is not None and cls >= num_classes:
            raise ValueError(f"line {n}: class {cls} not in 0..{num_classes - 1}")
        xy = np.array(values[1:], np.float64)
        if not np.all(np.isfinite(xy)):
            raise ValueError(f"line {n}: NaN or inf")
        if len(values) == 5:
            xc, yc, bw, bh = xy
            box = np.array([(xc - bw / 2) * w, (yc - bh / 2) * h, (xc + bw / 2) * w, (yc + bh / 2) * h])
            seg = np.zeros((0, 2), np.float32)
        else:
            seg = (xy.reshape(-1, 2) * (w, h)).astype(np.float32)
            box = np.array([*seg.min(0), *seg.max(0)])
        reason, clipped = box_problem(box.astype(np.float32), h, w)
        if reason:
            raise ValueError(f"line {n}: {reason}")
        if not np.array_equal(clipped, box.astype(np.float32)):
            clipped_lines.append(n)
        boxes.append(clipped)
        classes.append(cls)
        segments.append(seg)
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64), segments, clipped_lines


def find_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_yolo(image_dir: str | Path, names: list[str] | None = None, verify_images: bool = True) -> DatasetIndex:
    """Read all images under ``image_dir`` (recursively) and their label files.

    ``names`` fixes the classes; without it there are ``max class + 1`` classes named ``class<i>``.
    Image ids are positions in the sorted file list; category ids equal the class ids.
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: image folder not found")
    report = LoadReport(str(image_dir))
    paths = find_images(image_dir)
    probes = _probe_all(paths, True)
    nc = len(names) if names else None
    records = []
    for image_id, (path, probe) in enumerate(zip(paths, probes)):
        if isinstance(probe, str):
            report.skip(probe, str(path))
            continue
        h, w = probe
        lp = label_path(path, image_dir)
        try:
            boxes, classes, segs, clipped = parse_label_file(lp, h, w, nc) if lp.is_file() else (
                np.zeros((0, 4), np.float32), np.zeros(0, np.int64), [], [])
        except (ValueError, UnicodeDecodeError) as e:
            report.skip("malformed label file", f"{lp} ({e})")
            continue
        for n in clipped:
            report.repair(CLIPPED, f"{lp} (line {n})")
        records.append(ImageRecord(image_id, path, h, w, boxes, classes, segs))
    if names is None:
        top = max((int(r.classes.max()) for r in records if len(r.classes)), default=-1)
        names = [f"class{i}" for i in range(top + 1)]
    index = DatasetIndex(records, list(names), list(range(len(names))), report)
    index.require_images(str(image_dir))
    return index
