"""COCO instances JSON -> :class:`DatasetIndex` (read with pycocotools).

Contiguous class ids follow the sorted original category ids; ``DatasetIndex.category_ids`` maps
back. ``iscrowd`` annotations go to ``crowd_boxes`` (never targets). Images without annotations
are kept as negatives. Problems are either fatal (:class:`DatasetError` naming the file) or
counted in the :class:`LoadReport`; nothing is silently dropped or silently wrong.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from .image_io import ImageProblem, probe_image
from .records import CLIPPED, DatasetError, DatasetIndex, ImageRecord, LoadReport, box_problem


def read_json(path: Path) -> dict:
    """Parse a COCO JSON file; any syntax or structure problem is a :class:`DatasetError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: JSON syntax error at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path}: not a COCO instances file (no 'images' list)")
    data.setdefault("annotations", [])
    data.setdefault("categories", [])
    for key in ("images", "categories"):
        dup = [i for i, n in Counter(x.get("id") for x in data[key]).items() if n > 1]
        if dup:
            raise DatasetError(f"{path}: duplicate {key[:-1]} ids {sorted(dup)[:10]}")
    return data


def polygon_points(segmentation) -> np.ndarray:
    """All polygon vertices of a COCO segmentation as float32 [k, 2]; RLE or missing -> [0, 2]."""
    if not isinstance(segmentation, list):
        return np.zeros((0, 2), np.float32)
    polys = [np.asarray(p, np.float32).reshape(-1, 2) for p in segmentation if len(p) >= 6 and len(p) % 2 == 0]
    return np.concatenate(polys) if polys else np.zeros((0, 2), np.float32)


def _probe_all(paths: list[Path], verify: bool) -> list[tuple[int, int] | str]:
    def one(p: Path):
        try:
            return probe_image(p)
        except ImageProblem as e:
            return str(e)

    if not verify:
        return [("missing image file" if not p.exists() else (0, 0)) for p in paths]
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, paths, chunksize=64))


def load_coco(annotation_file: str | Path, image_dir: str | Path, verify_images: bool = True,
              names: list[str] | None = None) -> DatasetIndex:
    """Read a split. ``verify_images`` probes every image header (size, truncation, EXIF).

    ``names`` (``data.source.names``): the class list, fixed by the user; each category is mapped by
    its name to its position in ``names`` (so splits whose ids differ agree), a category whose name is
    not listed is an error, and a listed name the file lacks gets an unused id (it has no boxes)."""
    annotation_file, image_dir = Path(annotation_file), Path(image_dir)
    data = read_json(annotation_file)
    report = LoadReport(str(annotation_file))
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()

    cat_ids = sorted(coco.getCatIds())
    if names is None:
        names = [coco.cats[c].get("name", str(c)) for c in cat_ids]
        contiguous = {c: i for i, c in enumerate(cat_ids)}
    else:
        names = [str(n) for n in names]
        by_name = {str(coco.cats[c].get("name", c)): c for c in cat_ids}
        unknown = [f"{c} ({coco.cats[c].get('name')})" for c in cat_ids if str(coco.cats[c].get("name", c)) not in names]
        if unknown:
            raise DatasetError(f"{annotation_file}: categories {unknown[:5]} are not in data.source.names {names[:10]}")
        contiguous = {c: names.index(str(coco.cats[c].get("name", c))) for c in cat_ids}
        spare = iter(range(max(cat_ids, default=0) + 1, 1 << 30))
        cat_ids = [by_name[n] if n in by_name else next(spare) for n in names]
    known_images = set(coco.imgs)
    for ann in data["annotations"]:
        if ann.get("image_id") not in known_images:
            report.skip("annotation for an unknown image id", f"annotation {ann.get('id')}")

    images = [coco.imgs[i] for i in sorted(coco.imgs)]
    paths = [image_dir / im["file_name"] for im in images]
    probes = _probe_all(paths, verify_images)
    records = []
    for im, path, probe in zip(images, paths, probes):
        if isinstance(probe, str):
            report.skip(probe, str(path))
            continue
        h, w = im.get("height"), im.get("width")
        if (h is None) != (w is None):
            report.skip(f"image entry without its '{'height' if h is None else 'width'}' key", str(path))
            continue
        if verify_images and (h, w) != probe:
            if h is not None or w is not None:
                report.skip(f"size in JSON differs from the file after EXIF orientation {probe}", str(path))
                continue
            h, w = probe
        if h is None or w is None:
            report.skip("image entry without 'height' and 'width' keys (and verify_images off)", str(path))
            continue
        records.append(_record(coco, im, path, int(h), int(w), contiguous, report))
    index = DatasetIndex(records, names, cat_ids, report, annotation_file)
    index.require_images(str(annotation_file))
    return index


def _record(coco: COCO, im: dict, path: Path, h: int, w: int, contiguous: dict, report: LoadReport) -> ImageRecord:
    boxes, classes, segments, crowd, crowd_cls = [], [], [], [], []
    for ann in coco.imgToAnns.get(im["id"], []):
        where = f"{path.name} annotation {ann.get('id')}"
        if ann.get("category_id") not in contiguous:
            report.skip("category id not in 'categories'", where)
            continue
        try:
            x, y, bw, bh = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            report.skip("malformed bbox", where)
            continue
        reason, box = box_problem(np.array([x, y, x + bw, y + bh], np.float32), h, w)
        if reason:
            report.skip(reason, where)
            continue
        if not np.array_equal(box, np.array([x, y, x + bw, y + bh], np.float32)):
            report.repair(CLIPPED, where)
        cls = contiguous[ann["category_id"]]
        if ann.get("iscrowd", 0):
            crowd.append(box)
            crowd_cls.append(cls)
            continue
        boxes.append(box)
        classes.append(cls)
        segments.append(polygon_points(ann.get("segmentation")))
    return ImageRecord(
        image_id=int(im["id"]), path=path, height=h, width=w,
        boxes=np.array(boxes, np.float32).reshape(-1, 4), classes=np.array(classes, np.int64),
        segments=segments,
        crowd_boxes=np.array(crowd, np.float32).reshape(-1, 4), crowd_classes=np.array(crowd_cls, np.int64),
    )


def index_to_coco(index: DatasetIndex, image_dir: Path | None = None) -> dict:
    """A COCO instances dict of a :class:`DatasetIndex` (original category ids; crowd kept).

    ``file_name`` is relative to ``image_dir`` when given, else the bare file name.
    """
    images, anns = [], []
    for r in index.records:
        name = r.path.relative_to(image_dir).as_posix() if image_dir else r.path.name
        images.append({"id": r.image_id, "file_name": name, "height": r.height, "width": r.width})
        items = [(b, c, s, 0) for b, c, s in zip(r.boxes, r.classes, r.segments)]
        items += [(b, c, np.zeros((0, 2)), 1) for b, c in zip(r.crowd_boxes, r.crowd_classes)]
        for box, cls, seg, crowd in items:
            x1, y1, x2, y2 = (float(v) for v in box)
            anns.append({
                "id": len(anns) + 1, "image_id": r.image_id, "category_id": index.category_ids[int(cls)],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": crowd,
                "segmentation": [seg.reshape(-1).round(2).tolist()] if len(seg) >= 3 else [],
            })
    cats = [{"id": c, "name": n} for c, n in zip(index.category_ids, index.names)]
    return {"images": images, "annotations": anns, "categories": cats}
