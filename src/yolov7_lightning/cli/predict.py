"""``yolov7-predict ckpt=<checkpoint> source=<image|folder>``: boxes and class names drawn on every
image, and a JSON of detections in original image coordinates, in the Hydra run folder. Any image
size works: images are letterboxed to the model's input size (a multiple of its max stride)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ..data import ImageMeta, letterbox
from ..data.image_io import decode_image
from ..eval import draw_detections, non_max_suppression, prediction_records, save_predictions
from ..training.checkpoint import load_module
from .app import hydra_app

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


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


@torch.no_grad()
def run(cfg: DictConfig) -> list[dict]:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    module = load_module(cfg.ckpt)
    model, names = module.model, list(module.hparams.names or [])
    stride = model.max_stride
    size = int(cfg.img_size or module.hparams.image_size)
    size = math.ceil(size / stride) * stride
    records = []
    for i, path in enumerate(image_files(cfg.source)):
        image = decode_image(path)
        boxed, lb = letterbox(image, (size, size))
        x = torch.from_numpy(boxed).permute(2, 0, 1)[None].float().div(255)
        dets = non_max_suppression(model(x), conf_thres=cfg.conf_thres, iou_thres=cfg.iou_thres,
                                   max_det=cfg.max_det, multi_label=False)
        meta = ImageMeta(i, path, image.shape[:2], (size, size), lb.ratio_hw, lb.pad_tl)
        record = prediction_records(dets, [meta], names=names or None, category_ids=module.hparams.category_ids)[0]
        records.append(record)
        original = dets[0].clone()
        original[:, :4] = meta.to_original(original[:, :4])
        drawn = draw_detections(image, original, names or None)
        cv2.imwrite(str(out_dir / "images" / f"{path.stem}.jpg"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    save_predictions(records, out_dir / "predictions.json")
    total = sum(len(r["scores"]) for r in records)
    print(f"{len(records)} images, {total} detections")
    print(f"outputs: {out_dir}  (images/, predictions.json)")
    return records


main = hydra_app("predict", run)


if __name__ == "__main__":
    main()
