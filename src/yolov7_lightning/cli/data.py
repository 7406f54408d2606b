"""``yolov7-data``: generate the built-in shapes dataset or convert YOLO text labels to COCO JSON.

    yolov7-data                                        # shapes into the user cache dir
    yolov7-data out=/tmp/shapes source.num_train=500   # elsewhere, smaller
    yolov7-data action=yolo2coco images=/d/images/val out=/d/instances_val.json names=[cat,dog]
    yolov7-data action=anchors data=yolo data.source.root=/d data.img_size=320 format=json
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..atomic import atomic_write_json
from ..data.coco import index_to_coco
from ..data.shapes import ensure_shapes
from ..data.sources import as_source, shapes_spec, split_index
from ..data.yolo_txt import load_yolo
from .app import hydra_app
from ..errors import ConfigError

ACTIONS = ("shapes", "yolo2coco", "anchors")
FORMATS = ("text", "json")


def anchors(cfg: DictConfig) -> dict:
    """The autoanchor check of ``variant``'s anchors (``weights``: a checkpoint's) against the
    training boxes of ``data`` at ``data.img_size``: one JSON object, or a text summary."""
    from ..data.datamodule import as_hw
    from ..models import build_model
    from ..models.autoanchor import apply_anchor_config, index_wh
    from ..training.weights import load_pretrained

    if cfg.format not in FORMATS:
        raise ConfigError(f"unknown format {cfg.format!r}; valid: {', '.join(FORMATS)}")
    size = max(as_hw(OmegaConf.to_container(cfg.data.img_size) if not isinstance(cfg.data.img_size, int)
                     else cfg.data.img_size))
    index = split_index(as_source(cfg.data.source), "train")
    index.report.log_once()
    model = build_model(cfg.variant, num_classes=max(index.num_classes, 1))
    if cfg.weights:
        load_pretrained(model, cfg.weights)
    spec = cfg.anchors if isinstance(cfg.anchors, (str, type(None))) else OmegaConf.to_container(cfg.anchors)
    wh, owner = index_wh(index, size)
    fit = apply_anchor_config(model, spec, wh, owner, size, anchor_t=float(cfg.anchor_t), seed=int(cfg.seed))
    result = fit.as_dict() | {"variant": cfg.variant, "strides": list(model.arch.strides)}
    print(json.dumps(result) if cfg.format == "json" else fit.summary())
    return result


def run(cfg: DictConfig) -> Path | dict:
    if cfg.action not in ACTIONS:
        raise ConfigError(f"unknown action {cfg.action!r}; valid: {', '.join(ACTIONS)}")
    if cfg.action == "anchors":
        return anchors(cfg)
    if cfg.action == "shapes":
        src = as_source(cfg.source)
        folder = ensure_shapes(shapes_spec(src), cfg.out or src.root, src.generate_workers)
        print(f"shapes dataset: {folder}")
        return folder
    if not cfg.images or not cfg.out:
        raise ConfigError("yolo2coco needs images=<folder of images> and out=<json file>")
    names = OmegaConf.to_container(cfg.names) if cfg.names else None
    index = load_yolo(cfg.images, names)
    index.report.log_once()
    if not index.report.clean:
        print(index.report.summary())
    coco = index_to_coco(index, image_dir=Path(cfg.images))
    out = Path(cfg.out)
    atomic_write_json(coco, out)
    print(f"{len(coco['images'])} images, {len(coco['annotations'])} annotations -> {out}")
    return out


main = hydra_app("data_tool", run)


if __name__ == "__main__":
    main()
