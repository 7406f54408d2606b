"""``yolov7-info``: parameters, GFLOPs and module counts, training vs deploy form.

    yolov7-info model=yolov7-e6e                 # table
    yolov7-info model=yolov7 format=json         # one JSON object
    yolov7-info model=yolov7 scaling=compound    # the scaled network
"""

from __future__ import annotations

import json

import torch
from omegaconf import DictConfig

from ..config import ModelConfig
from ..models import build_model
from ..models.summary import summarize
from ..specs import to_spec
from .app import hydra_app
from ..errors import ConfigError

FORMATS = ("table", "json")


def run(cfg: DictConfig) -> dict:
    if cfg.format not in FORMATS:
        raise ConfigError(f"unknown format {cfg.format!r}; valid: {', '.join(FORMATS)}")
    with torch.device("meta"):  # shapes only: nothing is allocated or computed
        model = build_model(to_spec(ModelConfig, cfg.model, "model").spec())
    info = summarize(model, cfg.image_size)
    info["scaling"] = dict(cfg.scaling)
    if cfg.format == "json":
        print(json.dumps(info))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value:,}" if key.startswith("params") else f"{key:<{width}}  {value}")
    return info


main = hydra_app("info", run)


if __name__ == "__main__":
    main()
