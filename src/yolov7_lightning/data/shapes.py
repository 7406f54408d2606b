"""The built-in synthetic "shapes" dataset: real JPEGs plus a real COCO JSON with polygons.

Five visually distinct classes (circle, square, triangle, star, cross), each with its own hue
range, sizes log-uniform from ``min_size`` px to ``max_size`` (default half the image), aspect ratios 0.75-1.33, random
rotation, up to ``max_objects`` per image with bounded overlap, on textured, cluttered (low
saturation lines and blobs) backgrounds; about 5 % of images are empty. Every image is drawn from
``numpy.random.default_rng([seed, split, i])``, so the output is identical for a seed regardless
of the number of worker processes.

Layout: ``<root>/shapes-<key>/images/{train,val}/*.jpg`` and
``annotations/instances_{train,val}.json``; ``<key>`` hashes the parameters, so changing any of
them generates a new folder and an existing one is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_folder
from ..errors import ConfigError
from .config import SourceConfig

CLASSES = ("circle", "square", "triangle", "star", "cross")
HUES = (0, 30, 60, 105, 150)  # OpenCV hue (0-180) centre per class: red, yellow, green, blue, magenta
VERSION = 1
SPLITS = {"train": 0, "val": 1}


def default_cache_dir() -> Path:
    """``$YOLOV7_CACHE`` or ``$XDG_CACHE_HOME/yolov7_lightning`` (``~/.cache/yolov7_lightning``)."""
    env = os.environ.get("YOLOV7_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "yolov7_lightning"


@dataclass(frozen=True)
class ShapesSpec:
    """What to generate; every field enters the cache key."""

    num_train: int = SourceConfig.num_train  # the defaults of the data group's source (data/config.py)
    num_val: int = SourceConfig.num_val
    image_size: int = SourceConfig.image_size
    seed: int = SourceConfig.seed
    min_size: int = SourceConfig.min_size
    max_objects: int = SourceConfig.max_objects
    empty_fraction: float = 0.05
    max_size: float = SourceConfig.max_size  # largest object side in px; 0: half the image
    num_classes: int = SourceConfig.shape_classes  # the first N classes of CLASSES (1: circles only, one class)

    def key(self) -> str:
        fields = asdict(self)
        for name in ("max_size", "num_classes"):  # at their defaults, keep the folders of older specs
            if fields[name] == getattr(ShapesSpec, name):
                fields.pop(name)
        text = json.dumps({**fields, "version": VERSION}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def shape_polygon(cls: int, rng: np.random.Generator, cx: float, cy: float, size: float) -> np.ndarray:
    """float32 [k, 2] polygon of class ``cls`` with extent about ``size`` px around (cx, cy)."""
    r = size / 2
    if cls == 0:
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif cls == 1:
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * 0.8
    elif cls == 2:
        t = np.deg2rad([-90, 30, 150])
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif cls == 3:
        t = np.deg2rad(np.arange(10) * 36 - 90)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * np.where(np.arange(10) % 2, 0.45, 1.0)[:, None]
    else:
        a = 0.33
        pts = np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1],
                        [-a, a], [-1, a], [-1, -a], [-a, -a]], np.float64)
    aspect = np.exp(rng.uniform(np.log(0.75), np.log(1.33)))
    pts = pts * (r * aspect**0.5, r / aspect**0.5)
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return (pts @ rot.T + (cx, cy)).astype(np.float32)


def _background(rng: np.random.Generator, s: int) -> np.ndarray:
    low = rng.integers(40, 200, (6, 6, 3), dtype=np.uint8)
    grey = low.mean(2, keepdims=True)
    low = (grey + (low - grey) * 0.3).astype(np.uint8)  # low saturation: never a class colour
    img = cv2.resize(low, (s, s), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(3, 12)):  # clutter: grey-ish lines and outlines
        c = tuple(int(v) for v in rng.integers(30, 220) + rng.integers(-20, 20, 3))
        p1, p2 = rng.integers(0, s, 2), rng.integers(0, s, 2)
        if rng.random() < 0.6:
            cv2.line(img, tuple(map(int, p1)), tuple(map(int, p2)), c, int(rng.integers(1, 3)), cv2.LINE_AA)
        else:
            axes = tuple(int(v) for v in rng.integers(4, s // 4, 2))
            cv2.ellipse(img, tuple(map(int, p1)), axes, float(rng.uniform(0, 180)), 0, 360, c, 1, cv2.LINE_AA)
    return img


def _colour(cls: int, rng: np.random.Generator) -> tuple[int, int, int]:
    hsv = np.array([[[(HUES[cls] + rng.integers(-6, 7)) % 180, rng.integers(150, 256), rng.integers(140, 256)]]],
                   np.uint8)
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _overlaps(box: np.ndarray, boxes: list[np.ndarray], limit: float = 0.3) -> bool:
    for b in boxes:
        iw = min(box[2], b[2]) - max(box[0], b[0])
        ih = min(box[3], b[3]) - max(box[1], b[1])
        if iw > 0 and ih > 0:
            inter = iw * ih
            if inter / ((b[2] - b[0]) * (b[3] - b[1])) > limit or inter / ((box[2] - box[0]) * (box[3] - box[1])) > limit:
                return True
    return False


def draw_image(spec: ShapesSpec, split: int, i: int) -> tuple[bytes, list[tuple[int, np.ndarray]]]:
    """JPEG bytes and the (class, polygon) list of image ``i`` of ``split``; pure function of its args."""
    rng = np.random.default_rng([spec.seed, split, i])
    s = spec.image_size
    img = _background(rng, s)
    objects: list[tuple[int, np.ndarray]] = []
    n = 0 if rng.random() < spec.empty_fraction else int(rng.integers(1, spec.max_objects + 1))
    boxes: list[np.ndarray] = []
    for _ in range(n * 4):  # a few tries per object
        if len(objects) == n:
            break
        size = float(np.exp(rng.uniform(np.log(spec.min_size), np.log(spec.max_size or s / 2))))
        cls = int(rng.integers(spec.num_classes))
        poly = shape_polygon(cls, rng, *rng.uniform(size / 2, s - size / 2, 2), size)
        box = np.concatenate([poly.min(0), poly.max(0)])
        if box.min() < 0 or box.max() > s - 1 or _overlaps(box, boxes):
            continue
        cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], _colour(cls, rng), cv2.LINE_AA, shift=4)
        boxes.append(box)
        objects.append((cls, poly))
    noise = rng.integers(-8, 9, img.shape, dtype=np.int16)
    img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes(), objects


def _write_one(args) -> list[dict]:
    spec, split, i, folder = args
    data, objects = draw_image(spec, SPLITS[split], i)
    (Path(folder) / f"{i:06d}.jpg").write_bytes(data)
    anns = []
    for cls, poly in objects:
        x1, y1 = poly.min(0)
        x2, y2 = poly.max(0)
        anns.append({"image_id": i + 1, "category_id": cls + 1, "iscrowd": 0,
                     "bbox": [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)],
                     "area": float(cv2.contourArea(poly)), "segmentation": [poly.reshape(-1).round(2).tolist()]})
    return anns


def _pool_map(fn, jobs: list, workers: int) -> list:
    """``map`` over a process pool whose workers end on their own: ``close`` + ``join`` (no SIGTERM
    is sent). A parent whose SIGTERM handler ignores the signal (submitit's job does) once left a
    pool waiting forever on a worker terminated before it had reset its handler; the workers are
    also forked with the default handler and reset it themselves."""
    ctx = get_context("spawn" if os.name == "nt" else "fork")
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL) if main_thread else None
    try:
        pool = ctx.Pool(workers, initializer=signal.signal, initargs=(signal.SIGTERM, signal.SIG_DFL))
    finally:
        if main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    try:
        out = pool.map(fn, jobs, chunksize=32)
        pool.close()
        pool.join()
        return out
    finally:
        pool.terminate()


def generate(spec: ShapesSpec, out: Path, workers: int = 1) -> None:
    """Write both splits into ``out`` (an empty or new folder)."""
    if not 1 <= spec.num_classes <= len(CLASSES):
        raise ConfigError(f"shapes num_classes must be 1..{len(CLASSES)} (got {spec.num_classes})")
    if spec.max_size and not spec.min_size <= spec.max_size <= spec.image_size / 2:
        raise ConfigError(f"shapes max_size must be in [min_size, image_size / 2] (got {spec.max_size})")
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASSES[:spec.num_classes])]
    (out / "annotations").mkdir(parents=True)
    for split, count in (("train", spec.num_train), ("val", spec.num_val)):
        folder = out / "images" / split
        folder.mkdir(parents=True)
        jobs = [(spec, split, i, str(folder)) for i in range(count)]
        if workers > 1:
            per_image = _pool_map(_write_one, jobs, workers)
        else:
            per_image = [_write_one(j) for j in jobs]
        s = spec.image_size
        images = [{"id": i + 1, "file_name": f"{i:06d}.jpg", "height": s, "width": s} for i in range(count)]
        anns = [a for image_anns in per_image for a in image_anns]
        for k, a in enumerate(anns, 1):
            a["id"] = k
        with open(out / "annotations" / f"instances_{split}.json", "w") as f:
            json.dump({"images": images, "annotations": anns, "categories": categories}, f)


def ensure_shapes(spec: ShapesSpec, root: str | Path | None = None, workers: int | None = None) -> Path:
    """Folder of the generated dataset for ``spec``, generating it on first use (atomic rename)."""
    root = Path(root) if root else default_cache_dir() / "shapes"
    final = root / f"shapes-{spec.key()}"
    if (final / "done.json").is_file():
        return final
    with atomic_folder(final) as tmp:  # the files inside are written plainly: the folder appears whole or not at all
        generate(spec, tmp, workers or min(4, os.cpu_count() or 1))
        (tmp / "done.json").write_text(json.dumps(asdict(spec)))
    return final
