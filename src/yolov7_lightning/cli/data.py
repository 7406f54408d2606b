"""``yolov7-data``: generate the built-in shapes dataset or convert YOLO text labels to COCO JSON.

    yolov7-data                                        # shapes into the user cache dir
    yolov7-data out=/tmp/shapes source.num_train=500   # elsewhere, smaller
    yolov7-data action=yolo2coco images=/d/images/val out=/d/instances_val.json names=[cat,dog]
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..data.coco import index_to_coco
from ..data.shapes import ensure_shapes
from ..data.sources import as_source, shapes_spec
from ..data.yolo_txt import load_yolo
from .app import hydra_app

ACTIONS = ("shapes", "yolo2coco")


def run(cfg: DictConfig) -> Path:
    if cfg.action not in ACTIONS:
        raise ValueError(f"unknown action {cfg.action!r}; valid: {', '.join(ACTIONS)}")
    if cfg.action == "shapes":
        src = as_source(cfg.source)
        folder = ensure_shapes(shapes_spec(src), cfg.out or src.root, src.generate_workers)
        print(f"shapes dataset: {folder}")
        return folder
    if not cfg.images or not cfg.out:
        raise ValueError("yolo2coco needs images=<folder of images> and out=<json file>")
    names = OmegaConf.to_container(cfg.names) if cfg.names else None
    index = load_yolo(cfg.images, names)
    index.report.log_once()
    if not index.report.clean:
        print(index.report.summary())
    coco = index_to_coco(index, image_dir=Path(cfg.images))
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(coco))
    print(f"{len(coco['images'])} images, {len(coco['annotations'])} annotations -> {out}")
    return out


main = hydra_app("data_tool", run)


if __name__ == "__main__":
    main()
