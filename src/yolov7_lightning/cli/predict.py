"""``yolov7-predict ckpt=<checkpoint> source=<image|video|folder|stream>`` (PyTorch) or
``yolov7-predict backend=onnx model=<model.onnx> source=...`` (ONNX Runtime, the exported graph):
boxes and class names drawn on every image (``images/``) and video frame (``videos/``), detections
in original image coordinates in ``predictions.json`` (images) and ``predictions.jsonl`` (one line
per video frame), in the Hydra run folder. Any image size works: images are letterboxed to the
model's input size (a multiple of its max stride). ``classes`` keeps only some classes,
``agnostic_nms`` suppresses across classes, ``save_txt`` (``save_conf``) writes YOLO-format text
files under ``labels/`` (official ``detect.py`` options). An image sequence is a video too:
``source=frames/%06d.jpg`` (numbered frames), or a folder of frames with ``as_video=true``.
Every image goes through :class:`yolov7_lightning.api.ImageDetector`, the Python API's path."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ..api import ImageDetector, open_detector
from ..atomic import atomic_open, atomic_write
from ..data.image_io import ImageLoadError, decode_image
from ..data.media import (DEFAULT_FPS, MediaError, VideoOut, is_sequence, is_stream, media_files, open_capture,
                          read_frames, read_sequence, sequence_files)
from ..eval import Detector, detections_to_original, draw_detections, prediction_records, save_predictions
from ..errors import ConfigError
from ..eval.save_txt import label_name, write_lines, yolo_lines
from .app import hydra_app
from .output import require_writable

log = logging.getLogger(__name__)


def make_detector(cfg: DictConfig) -> Detector:
    """The detector of ``backend``: a checkpoint's network (PyTorch) or an exported graph (ONNX Runtime)."""
    if cfg.backend == "pytorch" and not cfg.ckpt:
        raise ConfigError("backend=pytorch needs ckpt=<training checkpoint, deploy file or official .pt>")
    if cfg.backend == "onnx" and not cfg.model:
        raise ConfigError("backend=onnx needs model=<model.onnx>")
    return open_detector(cfg.ckpt if cfg.backend == "pytorch" else cfg.model, backend=cfg.backend,
                         purpose="yolov7-predict")


def output_name(path: Path, source: str | Path) -> Path:
    """The drawn file's name under ``images/``: the path relative to a source folder, extension kept
    (``a.jpg``, ``a.png`` and ``sub/a.jpg`` stay three files)."""
    source = Path(source)
    return path.relative_to(source) if source.is_dir() else Path(path.name)


class Predictor:
    """One image (an RGB array) in, its record and drawing out; writes the YOLO text file when asked."""

    def __init__(self, cfg: DictConfig, out_dir: Path):
        self.cfg, self.out_dir = cfg, out_dir
        self.images = ImageDetector(make_detector(cfg), img_size=cfg.img_size, conf=cfg.conf_thres,
                                    iou=cfg.iou_thres, max_det=cfg.max_det, classes=cfg.get("classes"),
                                    agnostic=bool(cfg.agnostic_nms))
        self.detector, self.names = self.images.detector, self.images.names
        self.labels_written = 0  # save_txt files

    def __call__(self, image, index: int, path: str | Path, txt_name: Path | None):
        ((det, meta),) = self.images.detect([image], [path], first_id=index)
        record = prediction_records([det], [meta], names=self.names or None, category_ids=self.detector.category_ids)[0]
        original = detections_to_original(det, meta)
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


def predict_video(predictor: Predictor, frames, fps: float, source, name: Path, lines) -> tuple[int, int, Path]:
    """Every frame (``frames``: (RGB frame, its file or the source)) of a video, a stream or an image
    sequence: one JSON line each, an annotated video out. Returns (frames, detections, the written video)."""
    out = VideoOut(predictor.out_dir / "videos" / name, fps)
    count = detections = 0
    done = False
    try:
        for frame_index, (frame, path) in enumerate(frames):
            txt = Path(f"{name.with_suffix('').as_posix()}_{frame_index}.txt")  # official: <stem>_<frame>.txt
            record, drawn = predictor(frame, frame_index, path, txt)
            lines.write(json.dumps({"source": str(source), "frame": frame_index, **record}) + "\n")
            out.write(drawn)
            count += 1
            detections += len(record["scores"])
        done = True
    finally:
        out.close()
    return count, detections, out.path


def capture_frames(source, max_frames: int | None):
    """(frames, fps) of a video file or stream read by OpenCV; each frame's file is the source."""
    capture, fps = open_capture(source)
    return ((frame, source) for frame in read_frames(capture, max_frames)), fps


def sequence_video(cfg: DictConfig, skipped: list[str]):
    """(frames, fps, the video's name) of an image sequence: ``frames/%06d.jpg`` or, with
    ``as_video``, a folder of frames; the video is named after the frames' folder."""
    source = Path(str(cfg.source))
    folder = not is_sequence(source)
    if folder and source.is_file():
        raise MediaError(f"{source}: as_video=true needs a folder of frames or a numbered pattern "
                         "(frames/%06d.jpg)")
    files = sequence_files(source, folder=folder)
    stem = (source if folder else source.parent).resolve().name or "sequence"
    fps = float(cfg.get("fps") or DEFAULT_FPS)
    return read_sequence(files, cfg.get("max_frames"), skipped), fps, Path(f"{stem}.mp4")


def run(cfg: DictConfig) -> list[dict]:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    require_writable(out_dir / "images")
    predictor = Predictor(cfg, out_dir)
    stream = is_stream(cfg.source)
    sequence = not stream and (is_sequence(cfg.source) or bool(cfg.get("as_video")))
    images, videos = ([], []) if stream or sequence else media_files(cfg.source)
    records, skipped = predict_images(predictor, images, cfg.source)
    if images:
        save_predictions(records, out_dir / "predictions.json")
        total = sum(len(r["scores"]) for r in records)
        print(f"{len(records)} images, {total} detections ({cfg.backend})")
    if stream or videos or sequence:
        with atomic_open(out_dir / "predictions.jsonl", binary=False) as lines:
            if sequence:
                frames, fps, name = sequence_video(cfg, skipped)
                targets = [(cfg.source, name, lambda: (frames, fps))]
            elif stream:
                name = Path(f"stream_{cfg.source}.mp4" if str(cfg.source).isdigit() else "stream.mp4")
                targets = [(cfg.source, name, lambda: capture_frames(cfg.source, cfg.get("max_frames")))]
            else:
                targets = [(v, output_name(v, cfg.source), lambda v=v: capture_frames(v, cfg.get("max_frames")))
                           for v in videos]
            for source, name, open_frames in targets:
                frames, fps = open_frames()
                count, dets, written = predict_video(predictor, frames, fps, source, name, lines)
                print(f"{source}: {count} frames, {dets} detections -> {written} ({cfg.backend})")
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s): " + "; ".join(skipped[:5])
              + (" ..." if len(skipped) > 5 else ""))
    if cfg.get("save_txt"):
        print(f"labels/: {predictor.labels_written} files (save_txt; none for an image without detections)")
    print(f"outputs: {out_dir}  (images/, videos/, predictions.json, predictions.jsonl, labels/ with save_txt)")
    return records


main = hydra_app("predict", run, standalone=True)


if __name__ == "__main__":
    main()
