"""``save_txt`` / ``save_conf`` (official ``test.py --save-txt --save-conf``): one YOLO-format text
file of predictions per image, ``labels/<image path>.txt``, a line per detection:
``class cx cy w h`` normalised by the original image size, plus the score with ``save_conf``.
Classes are the contiguous ids of the model; images without detections get no file (official).

The file is named after the image's path relative to the folder of the images, extension kept
(``a.jpg`` -> ``labels/a.jpg.txt``, ``sub/a.jpg`` -> ``labels/sub/a.jpg.txt``): two images never
share a label file (the official ``<stem>.txt`` gives ``a.jpg`` and ``a.png`` one)."""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_write
from ..data.records import DatasetIndex
from .base import DetectionEvaluator


def label_name(relative: Path) -> Path:
    """``sub/a.jpg`` -> ``sub/a.jpg.txt``: the label file of the image at ``relative``."""
    return relative.with_name(relative.name + ".txt")


def write_lines(path: Path, lines: list[str]) -> None:
    """One label file, written atomically."""
    atomic_write(path, lambda f: f.write("\n".join(lines) + "\n"), binary=False)


def yolo_lines(rows_xyxy, width: int, height: int, save_conf: bool = False) -> list[str]:
    """``class cx cy w h [score]`` lines (normalised by the original image size) from detections
    ``[n, 6]`` = x1, y1, x2, y2 (original pixels), score, contiguous class."""
    lines = []
    for x1, y1, x2, y2, score, cls in rows_xyxy:
        values = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
        lines.append(f"{int(cls)} " + " ".join(f"{v:.6f}" for v in values) + (f" {score:.6f}" if save_conf else ""))
    return lines


def write_yolo_txt(evaluator: DetectionEvaluator, index: DatasetIndex, out_dir: str | Path, save_conf: bool = False) -> int:
    """Write the evaluator's detections (original pixels) as YOLO text files, named after each image's
    path relative to the folder holding all the split's images; returns the file count."""
    folder = Path(out_dir) / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    contiguous = {int(c): k for k, c in enumerate(index.category_ids)}
    records = {r.image_id: r for r in index.records}
    top = Path(os.path.commonpath([str(Path(r.path).parent) for r in index.records])) if index.records else Path()
    written = 0
    for image_id, rows in evaluator._store.items():
        if not len(rows):
            continue
        rec = records[int(image_id)]
        xyxy = [(x, y, x + w, y + h, score, contiguous[int(cat)]) for x, y, w, h, score, cat in rows.tolist()]
        lines = yolo_lines(xyxy, rec.width, rec.height, save_conf)
        write_lines(folder / label_name(Path(rec.path).relative_to(top)), lines)
        written += 1
    return written
