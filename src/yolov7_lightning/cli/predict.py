"""``yolov7-predict ckpt=<checkpoint> source=<image|folder>`` (PyTorch) or
``yolov7-predict backend=onnx model=<model.onnx> source=...`` (ONNX Runtime, the exported graph):
boxes and class names drawn on every image, and a JSON of detections in original image coordinates,
in the Hydra run folder. Any image size works: images are letterboxed to the model's input size (a
multiple of its max stride)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ..data import ImageMeta, letterbox
from ..data.image_io import IMAGE_SUFFIXES, ImageLoadError, decode_image
from ..eval import draw_detections, non_max_suppression, prediction_records, save_predictions
from ..models.checkpoint_reader import build_from, read_checkpoint
from .app import hydra_app
from .output import require_writable

log = logging.getLogger(__name__)


def image_files(source: str | Path) -> list[Path]:
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files
        raise ValueError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    raise FileNotFoundError(f"source not found: {path}")


BACKENDS = ("pytorch", "onnx")


class TorchDetector:
    """The PyTorch path: a training checkpoint's EMA weights (or a deploy file, or an official .pt),
    the official NMS."""

    def __init__(self, ckpt: str):
        source = read_checkpoint(ckpt, kinds=("training", "deploy", "official"), purpose="yolov7-predict")
        self.model = build_from(source)
        self.names = list(source.names or [])
        self.category_ids = (source.hparams or {}).get("category_ids")
        self.channels_last = bool((source.hparams or {}).get("channels_last", False))  # the model's memory format
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.stride = self.model.max_stride
        self.image_size = source.image_size

    @torch.no_grad()
    def detect(self, x: torch.Tensor, conf_thres: float, iou_thres: float, max_det: int) -> list[torch.Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return non_max_suppression(self.model(x), conf_thres=conf_thres, iou_thres=iou_thres, max_det=max_det,
                                   multi_label=False)


def make_detector(cfg: DictConfig):
    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown backend {cfg.backend!r}; valid: {', '.join(BACKENDS)}")
    if cfg.backend == "pytorch":
        if not cfg.ckpt:
            raise ValueError("backend=pytorch needs ckpt=<training checkpoint, deploy file or official .pt>")
        return TorchDetector(cfg.ckpt)
    if not cfg.model:
        raise ValueError("backend=onnx needs model=<model.onnx>")
    from ..eval.onnx_predict import OnnxDetector

    detector = OnnxDetector(cfg.model)
    detector.category_ids = None
    return detector


def input_size(cfg: DictConfig, detector) -> tuple[int, int]:
    fixed = getattr(detector, "fixed_size", None)
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


def run(cfg: DictConfig) -> list[dict]:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    require_writable(out_dir / "images")
    detector = make_detector(cfg)
    names = list(detector.names or [])
    size = input_size(cfg, detector)
    records, skipped = [], []
    for i, path in enumerate(image_files(cfg.source)):
        try:
            image = decode_image(path)
        except (ImageLoadError, OSError) as e:  # an unreadable image is a counted skip, the rest go on
            skipped.append(str(e) if str(path) in str(e) else f"{path}: {e}")
            log.warning("skipped %s", skipped[-1])
            continue
        boxed, lb = letterbox(image, size)
        x = torch.from_numpy(boxed).permute(2, 0, 1)[None].float().div(255)
        dets = detector.detect(x, conf_thres=cfg.conf_thres, iou_thres=cfg.iou_thres, max_det=cfg.max_det)
        meta = ImageMeta(i, path, image.shape[:2], size, lb.ratio_hw, lb.pad_tl)
        record = prediction_records(dets, [meta], names=names or None, category_ids=detector.category_ids)[0]
        records.append(record)
        original = dets[0].clone()
        original[:, :4] = meta.to_original(original[:, :4])
        drawn = draw_detections(image, original, names or None)
        target = out_dir / "images" / output_name(path, cfg.source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
            target = target.with_name(target.name + ".png")  # an extension OpenCV cannot write
            cv2.imwrite(str(target), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    save_predictions(records, out_dir / "predictions.json")
    total = sum(len(r["scores"]) for r in records)
    print(f"{len(records)} images, {total} detections ({cfg.backend})")
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s): " + "; ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    print(f"outputs: {out_dir}  (images/, predictions.json)")
    return records


main = hydra_app("predict", run, standalone=True)


if __name__ == "__main__":
    main()
