"""``save_txt`` / ``save_conf`` (official ``test.py --save-txt --save-conf``): one YOLO-format text
file of predictions per image, ``labels/<image stem>.txt``, a line per detection:
``class cx cy w h`` normalised by the original image size, plus the score with ``save_conf``.
Classes are the contiguous ids of the model; images without detections get no file (official)."""

from __future__ import annotations

from pathlib import Path

from ..data.records import DatasetIndex
from .base import DetectionEvaluator


def write_yolo_txt(evaluator: DetectionEvaluator, index: DatasetIndex, out_dir: str | Path, save_conf: bool = False) -> int:
    """Write the evaluator's detections (original pixels) as YOLO text files; returns the file count."""
    folder = Path(out_dir) / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    contiguous = {int(c): k for k, c in enumerate(index.category_ids)}
    records = {r.image_id: r for r in index.records}
    written = 0
    for image_id, rows in evaluator._store.items():
        if not len(rows):
            continue
        rec = records[int(image_id)]
        lines = []
        for x, y, w, h, score, cat in rows.tolist():
            values = [(x + w / 2) / rec.width, (y + h / 2) / rec.height, w / rec.width, h / rec.height]
            text = f"{contiguous[int(cat)]} " + " ".join(f"{v:.6f}" for v in values)
            lines.append(text + (f" {score:.6f}" if save_conf else ""))
        (folder / f"{rec.path.stem}.txt").write_text("\n".join(lines) + "\n")
        written += 1
    return written
