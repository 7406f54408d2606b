"""``yolov7-info``: parameters, GFLOPs and module counts, training vs deploy form.

    yolov7-info model=yolov7-e6e                 # table
    yolov7-info model=yolov7 format=json         # one JSON object
    yolov7-info model=yolov7 scaling=compound    # the scaled network
"""

from __future__ import annotations

import json

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from ..config import register_configs
from ..models.summary import summarize
from .paths import CONFIG_DIR

FORMATS = ("table", "json")


def run(cfg: DictConfig) -> dict:
    if cfg.format not in FORMATS:
        raise ValueError(f"unknown format {cfg.format!r}; valid: {', '.join(FORMATS)}")
    with torch.device("meta"):  # shapes only: nothing is allocated or computed
        model = instantiate(cfg.model)
    info = summarize(model, cfg.image_size)
    info["scaling"] = dict(cfg.scaling)
    if cfg.format == "json":
        print(json.dumps(info))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value:,}" if key.startswith("params") else f"{key:<{width}}  {value}")
    return info


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="info")
def _main(cfg: DictConfig) -> None:
    run(cfg)


def main() -> None:
    register_configs()
    _main()


if __name__ == "__main__":
    main()
