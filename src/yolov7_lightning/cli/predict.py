"""``yolov7-predict ckpt=<checkpoint> source=<image|video|folder|stream>`` (PyTorch) or
``yolov7-predict backend=onnx model=<model.onnx> source=...`` (ONNX Runtime, the exported graph):
boxes and class names drawn on every image (``images/``) and video frame (``videos/``), detections
in original image coordinates in ``predictions.json`` (images) and ``predictions.jsonl`` (one line
per video frame), in the Hydra run folder. Any image size works: images are letterboxed to the
model's input size (a multiple of its max stride). ``classes`` keeps only some classes,
``agnostic_nms`` suppresses across classes, ``save_txt`` (``save_conf``) writes YOLO-format text
files under ``labels/`` (official ``detect.py`` options)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import cv2
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ..atomic import atomic_open, atomic_write
from ..data import ImageMeta, letterbox
from ..data.image_io import ImageLoadError, decode_image
from ..errors import ConfigError
from ..data.media import VideoOut, is_stream, media_files, open_capture, read_frames
from ..eval import Detector, TorchDetector, draw_detections, prediction_records, save_predictions
from ..eval.save_txt import label_name, write_lines, yolo_lines
from .app import hydra_app
from .output import require_writable

log = logging.getLogger(__name__)


BACKENDS = ("pytorch", "onnx")


def make_detector(cfg: DictConfig) -> Detector:
    """The detector of ``backend``: a checkpoint's network (PyTorch) or an exported graph (ONNX Runtime)."""
    if cfg.backend not in BACKENDS:
        raise ConfigError(f"unknown backend {cfg.backend!r}; valid: {', '.join(BACKENDS)}")
    if cfg.backend == "pytorch":
        if not cfg.ckpt:
            raise ConfigError("backend=pytorch needs ckpt=<training checkpoint, deploy file or official .pt>")
        return TorchDetector.from_checkpoint(cfg.ckpt, purpose="yolov7-predict")
    if not cfg.model:
        raise ConfigError("backend=onnx needs model=<model.onnx>")
    from ..eval.onnx_predict import OnnxDetector

    return OnnxDetector(cfg.model)


def input_size(cfg: DictConfig, detector: Detector) -> tuple[int, int]:
    fixed = detector.fixed_size
    if fixed:
        return tuple(fixed)
    size = cfg.img_size or detector.image_size or 640
    size = size if isinstance(size, (int, float)) else max(size)
    s = detector.stride
    side = math.ceil(int(size) / s) * s
    return side, side


def output_name(path: Path, source: str | Path) -> Path:
    """The drawn file's name under ``images/``: the path relative to a source folder, extension kept
    (``a.jpg``, ``a.png`` and ``sub/a.jpg`` stay three files)."""
    source = Path(source)
    return path.relative_to(source) if source.is_dir() else Path(path.name)


def class_filter(classes, names: list[str]) -> list[int] | None:
    """``classes``: class ids or names -> contiguous ids (an unknown one is an error naming it)."""
    if classes is None:
        return None
    wanted = [classes] if isinstance(classes, (int, str)) else list(classes)
    ids = []
    for c in wanted:
        if isinstance(c, str) and not c.lstrip("-").isdigit():
            if c not in names:
                raise ConfigError(f"classes: unknown class name {c!r}; the model's classes: {', '.join(names)}")
            ids.append(names.index(c))
        else:
            ids.append(int(c))
    bad = [i for i in ids if not 0 <= i < max(len(names), 1)] if names else [i for i in ids if i < 0]
    if bad:
        raise ConfigError(f"classes: ids {bad} are outside the model's {len(names)} classes (0..{len(names) - 1})")
    return ids


class Predictor:
    """One image (an RGB array) in, its record and drawing out; writes the YOLO text file when asked."""

    def __init__(self, cfg: DictConfig, out_dir: Path):
        self.cfg, self.out_dir = cfg, out_dir
        self.detector = make_detector(cfg)
        self.names = list(self.detector.names or [])
        self.size = input_size(cfg, self.detector)
        self.classes = class_filter(cfg.get("classes"), self.names)
        self.labels_written = 0  # save_txt files

    def __call__(self, image, index: int, path: str | Path, txt_name: Path | None):
        boxed, lb = letterbox(image, self.size)
        x = torch.from_numpy(boxed).permute(2, 0, 1)[None].float().div(255)
        dets = self.detector.detect(x, conf_thres=self.cfg.conf_thres, iou_thres=self.cfg.iou_thres,
                                    max_det=self.cfg.max_det, classes=self.classes,
                                    agnostic=bool(self.cfg.get("agnostic_nms", False)))
        meta = ImageMeta(index, path, image.shape[:2], self.size, lb.ratio_hw, lb.pad_tl)
        record = prediction_records(dets, [meta], names=self.names or None, category_ids=self.detector.category_ids)[0]
        original = dets[0].clone()
        original[:, :4] = meta.to_original(original[:, :4])
        if self.cfg.get("save_txt") and txt_name is not None and len(original):
            lines = yolo_lines(original.tolist(), image.shape[1], image.shape[0], bool(self.cfg.get("save_conf")))
            write_lines(self.out_dir / "labels" / txt_name, lines)
            self.labels_written += 1
        return record, draw_detections(image, original, self.names or None)


def predict_images(predictor: Predictor, images: list[Path], source: str) -> tuple[list[dict], list[str]]:
    records, skipped = [], []
    for i, path in enumerate(images):
        try:
            image = decode_image(path)
        except (ImageLoadError, OSError) as e:  # an unreadable image is a counted skip, the rest go on
            skipped.append(str(e) if str(path) in str(e) else f"{path}: {e}")
            log.warning("skipped %s", skipped[-1])
            continue
        name = output_name(path, source)
        record, drawn = predictor(image, i, path, label_name(name))
        records.append(record)
        write_image(predictor.out_dir / "images" / name, drawn)
    return records, skipped


def write_image(target: Path, rgb) -> Path:
    """The drawn image, encoded as its extension says (``.png`` appended where OpenCV has no encoder
    for it), written atomically: a full disk is an error naming the file, not a missing image."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    try:
        ok, encoded = cv2.imencode(target.suffix, bgr)
    except cv2.error:
        ok = False
    if not ok:
        target = target.with_name(target.name + ".png")  # an extension OpenCV cannot write
        ok, encoded = cv2.imencode(".png", bgr)
    return atomic_write(target, lambda f: f.write(encoded.tobytes()))


def predict_video(predictor: Predictor, source, name: Path, lines) -> tuple[int, int, Path]:
    """Every frame of a video file or stream: one JSON line each, an annotated video out.
    Returns (frames, detections, the written video)."""
    capture, fps = open_capture(source)
    out = VideoOut(predictor.out_dir / "videos" / name, fps)
    frames = detections = 0
    done = False
    try:
        for frame_index, frame in enumerate(read_frames(capture, predictor.cfg.get("max_frames"))):
            txt = Path(f"{name.with_suffix('').as_posix()}_{frame_index}.txt")  # official: <stem>_<frame>.txt
            record, drawn = predictor(frame, frame_index, source, txt)
            lines.write(json.dumps({"source": str(source), "frame": frame_index, **record}) + "\n")
            out.write(drawn)
            frames += 1
            detections += len(record["scores"])
        done = True
    finally:
        out.close(keep=done)
    return frames, detections, out.path


def run(cfg: DictConfig) -> list[dict]:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    require_writable(out_dir / "images")
    predictor = Predictor(cfg, out_dir)
    stream = is_stream(cfg.source)
    images, videos = ([], []) if stream else media_files(cfg.source)
    records, skipped = predict_images(predictor, images, cfg.source)
    if images:
        save_predictions(records, out_dir / "predictions.json")
        total = sum(len(r["scores"]) for r in records)
        print(f"{len(records)} images, {total} detections ({cfg.backend})")
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s): " + "; ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    if stream or videos:
        with atomic_open(out_dir / "predictions.jsonl", binary=False) as lines:
            targets = [(cfg.source, Path(f"stream_{cfg.source}.mp4" if str(cfg.source).isdigit() else "stream.mp4"))]
            if not stream:
                targets = [(v, output_name(v, cfg.source)) for v in videos]
            for source, name in targets:
                frames, dets, written = predict_video(predictor, source, name, lines)
                print(f"{source}: {frames} frames, {dets} detections -> {written} ({cfg.backend})")
    if cfg.get("save_txt"):
        print(f"labels/: {predictor.labels_written} files (save_txt; none for an image without detections)")
    print(f"outputs: {out_dir}  (images/, videos/, predictions.json, predictions.jsonl, labels/ with save_txt)")
    return records


main = hydra_app("predict", run, standalone=True)


if __name__ == "__main__":
    main()
